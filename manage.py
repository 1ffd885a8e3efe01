#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # manage.py is the developer's entry point: debug settings unless DJANGO_DEBUG says otherwise.
    # The servers (config/wsgi.py, the Celery app) default to production and need DJANGO_SECRET_KEY.
    os.environ.setdefault("DJANGO_DEBUG", "1")
    # Only migrate changes the schema: it connects as the owner role, DATABASE_MIGRATE_URL, when one is set
    # (README: Configuration); every other command connects as the application, DATABASE_URL.
    if sys.argv[1:2] == ["migrate"]:
        os.environ["HANDOFF_DATABASE_AS_OWNER"] = "1"
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
