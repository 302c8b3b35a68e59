"""What an application does that references a removed file again (promise 7
of cdc-cleaner's DESIGN.md), through the ORM and the default
FileSystemStorage, while cdc-cleaner runs on the same database and
MEDIA_ROOT. Each scenario prints one JSON object on stdout for
integration_test/django_rereference_test.go: the names the storage chose
and what each file holds.

  stale-save  Two instances of one row. B replaces the file; once the
              cleaner has removed the old one, A (stale) changes the title
              and saves, which writes every field, the old path included.
  resync      A job deletes rows and, once the cleaner has removed their
              files, re-creates them in one transaction with the same ids
              and file names (assigned, not uploaded again), all but the
              last.
"""
import json
import time

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from gallery.models import Photo

# How long to wait for the cleaner to remove a file.
REMOVAL_TIMEOUT = 20.0


def wait_removed(storage, name):
    deadline = time.monotonic() + REMOVAL_TIMEOUT
    while storage.exists(name):
        if time.monotonic() > deadline:
            raise CommandError(
                f"{name} still exists under MEDIA_ROOT {REMOVAL_TIMEOUT:.0f}s after "
                "its row stopped referencing it: the cleaner did not remove it"
            )
        time.sleep(0.05)


def upload(title, name, content):
    """Photo.objects.create with an uploaded file: the storage writes it
    (under a name of its choosing) before the INSERT."""
    return Photo.objects.create(title=title, image=ContentFile(content.encode(), name=name))


class Command(BaseCommand):
    help = "Reference again, through the ORM, files that cdc-cleaner removed."

    def add_arguments(self, parser):
        parser.add_argument("scenario", choices=["stale-save", "resync"])

    def handle(self, *args, scenario, **options):
        storage = Photo._meta.get_field("image").storage
        result = self.stale_save(storage) if scenario == "stale-save" else self.resync(storage)
        self.stdout.write(json.dumps(result))

    def stale_save(self, storage):
        photo = upload("me", "old.jpg", "the original photo")
        a = Photo.objects.get(pk=photo.pk)
        b = Photo.objects.get(pk=photo.pk)
        old = b.image.name
        # Saves the new file, then the row with its name (one UPDATE).
        b.image.save("new.jpg", ContentFile(b"the replacement"))
        wait_removed(storage, old)
        a.title = "me, renamed"
        a.save()  # every field: image = old again
        return {
            "old": old,
            "old_content": "the original photo",
            "new": b.image.name,
            "new_content": "the replacement",
        }

    def resync(self, storage):
        contents = {}
        rows = []
        for i in range(3):
            content = f"resync photo {i}"
            photo = upload(f"resync {i}", f"resync{i}.jpg", content)
            contents[photo.image.name] = content
            rows.append((photo.pk, photo.title, photo.image.name))
        Photo.objects.filter(title__startswith="resync ").delete()
        for _, _, name in rows:
            wait_removed(storage, name)
        with transaction.atomic():
            for pk, title, name in rows[:-1]:
                Photo.objects.create(id=pk, title=title, image=name)
        return {
            "contents": contents,
            "recreated": [name for _, _, name in rows[:-1]],
            "dropped": [name for _, _, name in rows[-1:]],
        }
