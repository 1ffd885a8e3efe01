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

    def handle(self, *args, name, shares_lead_ids=False, **options):
        try:
            source, token = source_create(name=name, shares_lead_ids=shares_lead_ids)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Created capture source {source.name!r}. Send 'Authorization: Token <token>'. Token:")
        self.stdout.write(token)
