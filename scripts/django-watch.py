#!/usr/bin/env python3
"""Print cdc-cleaner's storages and watch sections for a Django project.

Run it where manage.py runs, with the project's settings:

    DJANGO_SETTINGS_MODULE=mysite.settings python3 /path/to/django-watch.py

Every FileField and ImageField of every installed model becomes a column of
a watch entry (one entry per table), with the storage its field writes to:
the default FileSystemStorage is a local storage rooted at MEDIA_ROOT (or
the field storage's own location); django-storages' S3Boto3Storage is an s3
storage on AWS_STORAGE_BUCKET_NAME, with AWS_LOCATION as its prefix. A
field's default file (a string default) becomes a keep pattern of its
storage, so the file every new row starts with is never deleted. Review
the output before pasting it: it does not know the database URL, nor
columns that hold paths without being FileFields (cdc-cleaner discover
finds those).
"""
import os
import sys


def main():
    sys.path.insert(0, os.getcwd())
    import django

    django.setup()
    from django.apps import apps
    from django.conf import settings
    from django.core.files.storage import FileSystemStorage
    from django.db import models

    storages = {}  # name -> (lines, keep patterns)
    tables = {}  # table -> (storage, [columns])
    order = []

    def storage_of(field):
        st = field.storage
        # default_storage (DEFAULT_FILE_STORAGE) is a lazy wrapper: look at
        # the storage it wraps.
        if hasattr(st, "_wrapped") and hasattr(st, "_setup"):
            if st._wrapped is None or type(st._wrapped).__name__ == "object":
                st._setup()
            st = st._wrapped
        cls = type(st).__module__ + "." + type(st).__name__
        if isinstance(st, FileSystemStorage):
            root = os.path.abspath(str(st.location))
            name = "media" if root == os.path.abspath(str(settings.MEDIA_ROOT or ".")) else "media_" + str(len(storages))
            lines = ["type: local", "root: " + quote(root)]
        elif cls.endswith("S3Boto3Storage") or cls.endswith("S3Storage"):
            bucket = getattr(st, "bucket_name", None) or getattr(settings, "AWS_STORAGE_BUCKET_NAME", "")
            # The storage's own location (it defaults to AWS_LOCATION; an
            # empty one is the bucket's root).
            location = getattr(st, "location", None)
            if location is None:
                location = getattr(settings, "AWS_LOCATION", "")
            location = (location or "").strip("/")
            name = "s3" if not storages.get("s3") else "s3_" + str(len(storages))
            lines = ["type: s3", "bucket: " + quote(bucket)]
            if location:
                lines.append("prefix: " + quote(location + "/"))
            region = getattr(st, "region_name", None) or getattr(settings, "AWS_S3_REGION_NAME", None)
            if region:
                lines.append("region: " + quote(region))
            endpoint = getattr(st, "endpoint_url", None) or getattr(settings, "AWS_S3_ENDPOINT_URL", None)
            if endpoint:
                lines += ["endpoint: " + quote(endpoint), "path_style: true"]
        else:
            sys.stderr.write("django-watch: %s.%s uses storage %s, which it does not know; left out\n" % (field.model.__name__, field.name, cls))
            return None
        for existing, (existing_lines, _) in storages.items():
            if existing_lines == lines:
                return existing
        storages[name] = (lines, [])
        return name

    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        # Fields of this model's own table: an inherited field (multi-table
        # inheritance) is in its parent's table, listed with the parent.
        for field in model._meta.local_concrete_fields:
            if not isinstance(field, models.FileField):
                continue
            st = storage_of(field)
            if st is None:
                continue
            if isinstance(field.default, str) and field.default:
                storages[st][1].append(field.default)
            table = model._meta.db_table
            if '"' in table or "." in table:
                sys.stderr.write("django-watch: %s.%s: table %s names a schema; written as public.%s, check it\n" % (model.__name__, field.name, table, table))
            key = (table, st)
            if key not in tables:
                tables[key] = []
                order.append(key)
            tables[key].append(field.column)

    out = ["# cdc-cleaner configuration for %s (scripts/django-watch.py)" % os.environ.get("DJANGO_SETTINGS_MODULE", "")]
    if not order:
        out.append("# no FileField or ImageField in the installed models")
    out.append("storages:")
    for name, (lines, keep) in storages.items():
        out.append("  %s:" % name)
        out += ["    " + l for l in lines]
        if keep:
            out.append("    keep: [%s]  # the fields' default files" % ", ".join(quote(k) for k in sorted(set(keep))))
    out.append("watch:")
    for table, st in order:
        out.append("  - table: public.%s" % ident(table))
        out.append("    columns: [%s]" % ", ".join(ident(c) for c in tables[(table, st)]))
        out.append("    storage: %s" % st)
    print("\n".join(out))


def quote(s):
    """A YAML scalar that reads back as s."""
    return "'" + str(s).replace("'", "''") + "'"


def ident(name):
    """A name as cdc-cleaner's configuration reads it back."""
    if name.replace("_", "a").isalnum() and name == name.lower() and not name[0].isdigit():
        return name
    return quote('"' + name.replace('"', '""') + '"')


if __name__ == "__main__":
    main()
