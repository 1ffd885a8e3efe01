from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from routing.accounts.services import AccountsFileError, accounts_import


class Command(BaseCommand):
    help = (
        "Import accounts from the CRM's CSV (account_id,name,domains,phone,country,owner[,territory][,more columns "
        "as attributes]; domains separated by ';'; UTF-8, BOM fine). Upserts by account_id, all or nothing: every "
        "bad line is listed and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV exported from the CRM.")
        parser.add_argument("--dry-run", action="store_true", help="Check the file and count, write nothing.")
        parser.add_argument("--by", help="Username to record as the importer (default: none).")

    def handle(self, *args, file, dry_run, by, **options):
        person = None
        if by:
            person = get_user_model().objects.filter(username=by).first()
            if person is None:
                raise CommandError(f"No user {by!r}.")
        try:
            raw = Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}") from None
        try:
            summary = accounts_import(raw=raw, by=person, dry_run=dry_run)
        except AccountsFileError as exc:
            for problem in exc.problems:
                self.stderr.write(problem)
            raise CommandError(f"{len(exc.problems)} problem(s) in {file}; nothing was imported.") from None
        for note in summary.notes:
            self.stdout.write(note)
        verb = "Would import" if dry_run else "Imported"
        self.stdout.write(
            f"{verb} {summary.created + summary.updated + summary.unchanged} accounts: {summary.created} new, "
            f"{summary.updated} updated, {summary.unchanged} unchanged."
        )
