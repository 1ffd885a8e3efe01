from django.core.management.base import BaseCommand, CommandError

from routing.sources import source_create


class Command(BaseCommand):
    help = "Create a capture source and print its token (last line). The token is shown only once."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--shares-lead-ids",
            action="store_true",
            help="Its lead_ids are shared with other such sources: the same lead_id is the same person.",
        )
        parser.add_argument("--owner", metavar="USERNAME", help="Who answers for its schema and rejected posts.")
        parser.add_argument(
            "--schema-version", default="", help="The capture schema version its leads are read as (default: newest)."
        )
        parser.add_argument(
            "--keep-unknown-fields",
            action="store_true",
            help="Keep fields outside its schema version under attributes, with a warning (default: refuse the lead).",
        )

    def handle(self, *args, name, shares_lead_ids=False, **options):
        try:
            source, token = source_create(
                name=name,
                shares_lead_ids=shares_lead_ids,
                owner_username=options.get("owner") or "",
                schema_version=options.get("schema_version") or "",
                keep_unknown_fields=options.get("keep_unknown_fields", False),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Created capture source {source.name!r}. Send 'Authorization: Token <token>'. Token:")
        self.stdout.write(token)
