from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("gallery", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="photo",
            name="caption",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.CreateModel(
            name="Post",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("cover", models.FileField(blank=True, upload_to="covers/")),
            ],
        ),
        migrations.RunSQL(
            "CREATE TABLE gallery_upload_2026 PARTITION OF gallery_upload FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');",
            "DROP TABLE gallery_upload_2026;",
        ),
    ]
