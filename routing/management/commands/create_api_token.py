from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from routing.tokens import personal_token_create


class Command(BaseCommand):
    help = (
        "Make a personal API token for a person and print it (last line). It is stored only as a hash and shown "
        "only now; it expires after --days (default HANDOFF_API_TOKEN_DAYS)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--days", type=int, default=None)
        parser.add_argument("--name", default="", help="What it is for.")

    def handle(self, *args, username, days, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No person with username {username!r}.")
        try:
            token, clear = personal_token_create(user=user, name=name, days=days)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Token for {username}, valid until {token.expires_at:%Y-%m-%d %H:%M} UTC. Token:")
        self.stdout.write(clear)
