from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Photo",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(default="", max_length=200)),
                ("image", models.FileField(blank=True, upload_to="photos/")),
            ],
        ),
        # A partitioned table of uploads, which Django cannot declare: the
        # cleaner watches it, so setup installs its event trigger.
        migrations.RunSQL(
            "CREATE TABLE gallery_upload (id bigint NOT NULL, at date NOT NULL, file varchar(100) NOT NULL DEFAULT '', PRIMARY KEY (id, at)) PARTITION BY RANGE (at);"
            "CREATE TABLE gallery_upload_2025 PARTITION OF gallery_upload FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');",
            "DROP TABLE gallery_upload;",
        ),
    ]
