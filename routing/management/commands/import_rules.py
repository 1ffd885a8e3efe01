import json

from django.core.management.base import BaseCommand, CommandError

from routing.rules import RulesFileError, rules_import


class Command(BaseCommand):
    help = "Import owners, queues and rules from a JSON rules file (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the rules file, or - for standard input.")

    def handle(self, *args, file, **options):
        try:
            if file == "-":
                import sys

                document = json.load(sys.stdin)
            else:
                with open(file, encoding="utf-8") as handle:
                    document = json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file} is not valid UTF-8 JSON: {exc}") from None
        try:
            counts = rules_import(document=document)
        except RulesFileError as exc:
            raise CommandError(
                "Nothing was imported. Fix these and try again:\n  " + "\n  ".join(exc.problems)
            ) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {counts['owners']} owners, {counts['queues']} queues, {counts['rules']} rules."
            )
        )
