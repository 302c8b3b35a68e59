#!/usr/bin/env python3
"""A minimal Django project: the application whose migrations run beside
cdc-cleaner in integration_test/ddl_test.go. The database comes from the
environment (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
