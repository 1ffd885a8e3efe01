import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.utils.crypto import salted_hmac

from routing.accounts.services import accounts_import
from routing.dashboard.rollups import dashboard_rollup_recent
from routing.demo.availability import demo_availability_seed
from routing.demo.desk import demo_desk_seed
from routing.demo.history import demo_history_seed
from routing.models import Source
from routing.rules import rules_import
from routing.sources import source_create

DEMO_RULES = Path(__file__).resolve().parents[2] / "demo" / "rules.json"
DEMO_ACCOUNTS = Path(__file__).resolve().parents[2] / "demo" / "accounts.csv"
DEMO_SOURCE = "demo-web-form"
DEMO_LOGIN = ("admin", "handoff-demo")
DEMO_OWNER = "ada"


def demo_source_token() -> str:
    """The demo source's token: the same on every run (derived from SECRET_KEY), so seeding again while the
    demo runs never takes the token its trickle of leads posts with. Tokens are stored hashed, so it cannot
    be read back; a fresh random one would lock the running demo out."""
    return salted_hmac("handoff.seed_demo.source_token", DEMO_SOURCE, algorithm="sha256").hexdigest()


class Command(BaseCommand):
    help = "Load demo owners, queues and rules, a console login, and a demo capture source (prints its token)."

    def handle(self, *args, **options):
        username, password = DEMO_LOGIN
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.first_name, user.last_name = "Demo", "Admin"
        user.set_password(password)
        user.save()
        # The demo admin promotes the demo rules (recorded as them, never as each rule's owner).
        imported = rules_import(document=json.loads(DEMO_RULES.read_text()), by=user)
        accounts = accounts_import(raw=DEMO_ACCOUNTS.read_bytes())  # the demo's leads come from their domains
        # Ada owns most demo rules: log in as her to try "My rules" and sign-off with the same password.
        owner = get_user_model().objects.get(username=DEMO_OWNER)
        owner.set_password(password)
        owner.save()
        # Every demo rule's owner is a rule owner in the console too (My rules, notices, sign-off).
        rule_owners = Group.objects.get_or_create(name="rule_owners")[0]
        rule_owners.user_set.add(owner, *get_user_model().objects.filter(owned_rules__isnull=False).distinct())
        source = Source.objects.filter(name=DEMO_SOURCE).first() or source_create(name=DEMO_SOURCE)[0]
        token = demo_source_token()
        if source.token_hash != Source.hash_token(token) or source.owner_id is None:
            source.token_hash = Source.hash_token(token)
            source.token_prefix = token[: Source.TOKEN_PREFIX_LENGTH]
            source.owner = source.owner or owner  # Ada answers for the demo form's schema and rejected posts
            source.save()
        history = demo_history_seed(source=source)  # two weeks of routed leads, added once
        desk = demo_desk_seed(source=source)  # a dozen current exception items, opened once
        demo_availability_seed(person=owner)  # Ada's office hours and a week off ahead (Who is in, My hours)
        dashboard_rollup_recent(days_back=35)  # the dashboard has figures at once, not after beat's first tick
        self.stdout.write(
            f"Demo data: {imported.owners} owners, {imported.queues} queues, {imported.rules} rules, "
            f"{accounts.created + accounts.updated + accounts.unchanged} accounts, {history} past leads and "
            f"{len(desk)} exception items added; "
            f"login {username} / {password} (or {DEMO_OWNER}, a rule owner, same password); "
            f"source {DEMO_SOURCE}. Token:"
        )
        self.stdout.write(token)
