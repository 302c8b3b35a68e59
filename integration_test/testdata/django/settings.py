import os

SECRET_KEY = "cdc-cleaner-test"
INSTALLED_APPS = ["gallery"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Where FileFields store uploads (the default FileSystemStorage): the
# cleaner's local storage root in integration_test/django_rereference_test.go.
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", "")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ["PGPORT"],
        "NAME": os.environ["PGDATABASE"],
        "USER": os.environ["PGUSER"],
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
    }
}
