from django.core.management.base import BaseCommand, CommandError

from exceptions.permissions import CONSOLE_GROUPS, console_access_grant


class Command(BaseCommand):
    help = (
        "Give a person the console: put them in the ops and/or rule_owners group, creating them if new "
        "(then set their password with `changepassword USERNAME`). Admins: `createsuperuser`."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--group",
            action="append",
            required=True,
            choices=CONSOLE_GROUPS,
            help="ops (queues and items) or rule_owners (My rules, sign-off); repeat for both.",
        )
        parser.add_argument("--email", default="", help="Where their notifications go.")

    def handle(self, *args, username, group, email, **options):
        try:
            user, created = console_access_grant(username=username, groups=group, email=email)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        groups = ", ".join(sorted(user.groups.values_list("name", flat=True)))
        self.stdout.write(f"{'Created' if created else 'Updated'} {user.username}: groups {groups}.")
        if not user.has_usable_password():
            self.stdout.write(f"Set their password: .venv/bin/python manage.py changepassword {user.username}")
