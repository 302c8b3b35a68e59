from django.db import models


class Photo(models.Model):
    title = models.CharField(max_length=200, default="")
    image = models.FileField(upload_to="photos/", blank=True)
    caption = models.TextField(default="", blank=True)  # added by 0002


class Post(models.Model):  # added by 0002
    cover = models.FileField(upload_to="covers/", blank=True)
