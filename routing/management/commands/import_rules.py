import json
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from routing.rules import ActorRequired, RulesFileError, RulesImport, rules_import


class Command(BaseCommand):
    help = (
        "Make owners, queues and rules what a JSON rules file says (all or nothing); what already is as it says "
        "is not written again. Promotions need --as: they are made, through the gates, as that person. A "
        "governed queue's routing changes are staged for review as that person, not applied."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the rules file, or - for standard input.")
        parser.add_argument(
            "--as",
            dest="username",
            metavar="USERNAME",
            help="Who makes the promotions and backup owner changes (the rule's owner or an admin), and stages "
            "governed queues' routing changes (ops staff or an admin); required when the file does any of these.",
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
                "Nothing was imported. These changes promote rules, change a live setting or are staged for review "
                "on a governed queue, so a person makes them: run again with --as USERNAME (the rule's owner or an "
                "admin; ops staff or an admin for a governed queue; recorded as them).\n  " + "\n  ".join(exc.problems)
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
        if not report.changed and not report.queues_staged:
            self.stdout.write(f"Nothing {would}: the live state is what the file says.")
        if report.owners_changed:
            self.stdout.write(f"Owners {would}: {', '.join(report.owners_changed)}")
        if report.queues_changed:
            self.stdout.write(f"Queues {would}: {', '.join(report.queues_changed)}")
        for change in report.rules_changed:
            self.stdout.write(f"  {change.describe()}")
        for change in report.queues_staged:
            self._report_staged(change, report.dry_run)
        if report.needs_actor:
            staging = " or stages a governed queue's routing change" if report.queues_staged else ""
            self.stdout.write(
                f"Refused as it stands: it promotes rules or changes a backup owner{staging}; add --as USERNAME."
            )
        if report.refused:
            self.stdout.write("Refused as it stands:\n  " + "\n  ".join(report.refused))

    def _report_staged(self, change, dry_run: bool):
        """A governed queue's routing change is never applied by the import: say where it is reviewed."""
        if change.already_staged:
            url = reverse("console:staged-change", args=[change.staged_id])
            self.stdout.write(f"Already staged for review, nothing new staged: {change.describe()} ({url})")
        elif dry_run:
            url = reverse("console:queue-settings", args=[change.queue_id])
            self.stdout.write(f"Would be staged for review, not applied (governed queue; {url}): {change.describe()}")
        else:
            url = reverse("console:staged-change", args=[change.staged_id])
            self.stdout.write(
                self.style.WARNING(f"Staged for review, not applied (governed queue): {change.describe()}")
                + f"\n  Check its evidence and apply it at {url}"
            )
