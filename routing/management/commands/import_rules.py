import json
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from routing.rules import ActorRequired, RulesFileError, RulesImport, rules_import


class Command(BaseCommand):
    help = (
        "Make owners, queues and rules what a JSON rules file says (all or nothing); what already is as it says "
        "is not written again. Promotions need --as: they are made, through the gates, as that person."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the rules file, or - for standard input.")
        parser.add_argument(
            "--as",
            dest="username",
            metavar="USERNAME",
            help="Who makes the promotions and backup owner changes (the rule's owner or an admin); "
            "required when the file promotes anything.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; write nothing.")

    def handle(self, *args, file, username=None, dry_run=False, **options):
        document = self._read(file)
        by = None
        if username is not None:
            by = get_user_model().objects.filter(username=username, is_active=True).first()
            if by is None:
                raise CommandError(f"--as {username}: no active user with that username.")
        try:
            report = rules_import(document=document, by=by, dry_run=dry_run)
        except ActorRequired as exc:
            raise CommandError(
                "Nothing was imported. These changes promote rules or change a live setting, so a person makes "
                "them: run again with --as USERNAME (the rule's owner or an admin; recorded as them).\n  "
                + "\n  ".join(exc.problems)
            ) from None
        except RulesFileError as exc:
            raise CommandError(
                "Nothing was imported. Fix these and try again:\n  " + "\n  ".join(exc.problems)
            ) from None
        self._report(report)

    def _read(self, file):
        try:
            if file == "-":
                return json.load(sys.stdin)
            with open(file, encoding="utf-8") as handle:
                return json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file} is not valid UTF-8 JSON: {exc}") from None

    def _report(self, report: RulesImport):
        read = f"{report.owners} owners, {report.queues} queues, {report.rules} rules"
        if report.dry_run:
            self.stdout.write(f"Dry run, nothing written: read {read}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Imported {read}."))
        would = "would change" if report.dry_run else "changed"
        if not report.changed:
            self.stdout.write(f"Nothing {would}: the live state is what the file says.")
        if report.owners_changed:
            self.stdout.write(f"Owners {would}: {', '.join(report.owners_changed)}")
        if report.queues_changed:
            self.stdout.write(f"Queues {would}: {', '.join(report.queues_changed)}")
        for change in report.rules_changed:
            self.stdout.write(f"  {change.describe()}")
        if report.needs_actor:
            self.stdout.write("Refused as it stands: it promotes rules or changes a backup owner; add --as USERNAME.")
        if report.refused:
            self.stdout.write("Refused as it stands:\n  " + "\n  ".join(report.refused))
