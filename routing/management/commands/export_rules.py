import json

from django.core.management.base import BaseCommand

from routing.rules import rules_export


class Command(BaseCommand):
    help = (
        "Write owners, queues and rules as one JSON document (the import_rules format): each rule as it runs at "
        "its stage, with blocks for its staging version and draft where they differ."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="File to write; default: standard output.")

    def handle(self, *args, output=None, **options):
        text = json.dumps(rules_export(), indent=2, ensure_ascii=False) + "\n"
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            self.stdout.write(text, ending="")
