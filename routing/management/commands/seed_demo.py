import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from routing.accounts.services import accounts_import
from routing.dashboard.rollups import dashboard_rollup_recent
from routing.models import Source
from routing.rules import rules_import
from routing.sources import source_create

DEMO_RULES = Path(__file__).resolve().parents[2] / "demo" / "rules.json"
DEMO_ACCOUNTS = Path(__file__).resolve().parents[2] / "demo" / "accounts.csv"
DEMO_SOURCE = "demo-web-form"
DEMO_LOGIN = ("admin", "handoff-demo")
DEMO_OWNER = "ada"


class Command(BaseCommand):
    help = "Load demo owners, queues and rules, a console login, and a demo capture source (prints its token)."

    def handle(self, *args, **options):
        counts = rules_import(document=json.loads(DEMO_RULES.read_text()))
        accounts = accounts_import(raw=DEMO_ACCOUNTS.read_bytes())  # the demo's leads come from their domains
        username, password = DEMO_LOGIN
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.first_name, user.last_name = "Demo", "Admin"
        user.set_password(password)
        user.save()
        # Ada owns most demo rules: log in as her to try "My rules" and sign-off with the same password.
        owner = get_user_model().objects.get(username=DEMO_OWNER)
        owner.set_password(password)
        owner.save()
        owner.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
        dashboard_rollup_recent(days_back=35)  # the dashboard has figures at once, not after beat's first tick
        source = Source.objects.filter(name=DEMO_SOURCE).first()
        if source is None:
            source, token = source_create(name=DEMO_SOURCE)
        else:  # tokens are stored hashed: issue a fresh one so the trickle can post
            token = source.set_new_token()
            source.save()
        self.stdout.write(
            f"Demo data: {counts['owners']} owners, {counts['queues']} queues, {counts['rules']} rules, "
            f"{accounts.created + accounts.updated + accounts.unchanged} accounts; "
            f"login {username} / {password} (or {DEMO_OWNER}, a rule owner, same password); "
            f"source {DEMO_SOURCE}. Token:"
        )
        self.stdout.write(token)
