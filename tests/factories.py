"""factory-boy factories for every model the tests build."""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from exceptions.models import AlertChannel, AlertChannelKind, AlertEvent, ExceptionItem, ExceptionReason
from routing.accounts.models import Account
from routing.availability.models import TimeOff, WorkingHours
from routing.experiments.models import Arm, Experiment, ExperimentLead
from routing.governance.models import RulePromotion, RuleVersion
from routing.governance.services import rule_tests_record
from routing.integrations.models import DeliveryTarget, EnrichmentProvider
from routing.models import Lead, LeadStatus, Queue, QueueMembership, Rule, RuleStage, Source
from routing.tokens import personal_token_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests")


class SourceFactory(factory.django.DjangoModelFactory):
    """A capture source; the clear token is on `.token` (the database only has its hash)."""

    class Meta:
        model = Source

    name = factory.Sequence(lambda n: f"source-{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        source = model_class(*args, **kwargs)
        token = source.set_new_token()
        source.save()
        source.token = token
        return source


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Queue {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QueueMembership

    queue = factory.SubFactory(QueueFactory)
    user = factory.SubFactory(UserFactory)


class RuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rule
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Rule {n}")
    owner = factory.SubFactory(UserFactory)
    priority = factory.Sequence(lambda n: 10 * (n + 1))
    stage = RuleStage.PRODUCTION
    condition = factory.LazyFunction(lambda: {"field": "lifecycle_stage", "op": "eq", "value": "mql"})
    queue = factory.SubFactory(QueueFactory)
    description = "Routes test leads."
    inputs = "lifecycle_stage"
    outputs = "Assignment to the rule's queue."
    rollback_plan = "Roll back to the previous version."
    sla_minutes = 15
    test_cases = factory.LazyAttribute(
        lambda rule: [
            {
                "name": "an MQL",
                "lead": {"email": "case@example.com", "lifecycle_stage": "mql"},
                "expect": {"queue": rule.queue.name},
            }
        ]
    )

    @factory.post_generation
    def freeze(rule, create, extracted, **kwargs):
        """A rule built in staging or production has its frozen version 1 there, as promotion leaves it."""
        if not create or rule.stage == RuleStage.DRAFT:
            return
        version = RuleVersion.objects.create(
            rule=rule,
            number=1,
            **{field: getattr(rule, field) for field in Rule.CONTRACT_FIELDS},
            created_at=timezone.now(),
        )
        RulePromotion.objects.create(rule=rule, version=version, kind=rule.stage, by=rule.owner, at=version.created_at)
        pointer = "production_version" if rule.stage == RuleStage.PRODUCTION else "staging_version"
        setattr(rule, pointer, version)
        rule.save(update_fields=[pointer])

    @factory.post_generation
    def tests_run(rule, create, extracted, **kwargs):
        """Stored test results, as saving the draft through the service leaves them; `tests_run=False` builds
        a rule whose tests never ran (one written by other means)."""
        if create and extracted is not False:
            rule_tests_record(rule=rule)


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    origin = factory.SubFactory(SourceFactory)
    lead_id = factory.Sequence(lambda n: f"lead-{n}")
    email = factory.LazyAttribute(lambda lead: f"{lead.lead_id}@example.com")
    first_name = "Ada"
    last_name = "Byron"
    company = "Acme"
    company_size = 120
    country = "GB"
    lifecycle_stage = "mql"
    engagement_score = 75
    intent_score = 40
    occurred_at = factory.LazyFunction(timezone.now)
    received_at = factory.LazyFunction(timezone.now)
    status = LeadStatus.RECEIVED
    attributes = factory.LazyFunction(dict)


class ExceptionItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExceptionItem

    lead = factory.SubFactory(LeadFactory, status=LeadStatus.EXCEPTION)
    reason = ExceptionReason.NO_MATCHING_RULE
    queue = factory.SubFactory(QueueFactory, name="Triage")
    opened_at = factory.LazyFunction(timezone.now)
    ack_due_at = factory.LazyAttribute(lambda item: item.opened_at + timezone.timedelta(minutes=30))
    resolve_due_at = factory.LazyAttribute(lambda item: item.opened_at + timezone.timedelta(minutes=240))


class NotificationFactory(factory.django.DjangoModelFactory):
    """A grouped notification about one queue's items, as the sweep writes one."""

    class Meta:
        model = "exceptions.Notification"

    queue = factory.SubFactory(QueueFactory, name="Triage")
    key = factory.Sequence(lambda n: f"reminder:sweep-{n}")
    kind = "reminder"
    item_ids = factory.LazyFunction(list)
    item_count = 0
    created_at = factory.LazyFunction(timezone.now)
    deliver_after = factory.LazyAttribute(lambda n: n.created_at)


class SavedViewFactory(factory.django.DjangoModelFactory):
    """A person's saved item-list view: a name and the list's query string."""

    class Meta:
        model = "exceptions.SavedView"

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"View {n}")
    query = ""


class LeadPayloadFactory(factory.DictFactory):
    """The JSON body a capture system posts for one lead."""

    lead_id = factory.Faker("uuid4")
    email = factory.Sequence(lambda n: f"jo{n}@example.com")
    first_name = "Jo"
    last_name = "Doe"
    company = "Acme"
    company_size = 120
    country = "GB"
    lifecycle_stage = "mql"
    engagement_score = 75
    intent_score = 40.5
    attributes = factory.Dict({"form": "demo"})


def open_exception(*, queue=None, lead=None, reason=ExceptionReason.NO_MATCHING_RULE, **lead_fields):
    """An exception opened the way routing opens one (due times from the queue, SLA events, audit)."""
    from exceptions.services import exception_open

    lead = lead or LeadFactory(status=LeadStatus.EXCEPTION, **lead_fields)
    return exception_open(lead=lead, reason=reason, queue=queue or QueueFactory(name="Triage"))


def case(name: str, queue: str | None = None, **lead) -> dict:
    """A rule test case: a sample lead (email filled in) and its expected queue, or no match."""
    return {
        "name": name,
        "lead": {"email": "case@example.com", **lead},
        "expect": {"queue": queue} if queue else {"match": False},
    }


def promote_live(rule: Rule, **changes):
    """Edit a rule's draft and take it through staging, a replay and production, as its owner would."""
    from routing.governance.replay import replay_execute, replay_request
    from routing.governance.services import rule_draft_save, rule_promote

    for name, value in changes.items():
        setattr(rule, name, value)
    rule_draft_save(rule=rule, by=rule.owner)
    rule_promote(rule=rule, to=RuleStage.STAGING, by=rule.owner)
    replay_execute(run_id=replay_request(by=None).pk)  # as manage.py replay_rules does
    promotion = rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=rule.owner)
    rule.refresh_from_db()
    return promotion


class DeliveryTargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeliveryTarget

    name = factory.Sequence(lambda n: f"CRM {n}")
    url = "http://127.0.0.1:9/unused"
    secret = factory.Sequence(lambda n: f"whsec-test-{n}")
    events = factory.LazyFunction(lambda: ["lead.assigned", "lead.reassigned", "exception.resolved"])
    max_attempts = 8
    timeout_seconds = 1.0


class OutboxEventFactory(factory.django.DjangoModelFactory):
    """A pending, due outbox row, as `events_emit` writes one; building it directly skips the broker publish
    that `events_emit` asks for on commit (a lost publish)."""

    class Meta:
        model = "routing.OutboxEvent"

    target = factory.SubFactory(DeliveryTargetFactory)
    event_type = "lead.assigned"
    payload = factory.LazyAttribute(lambda e: {"type": e.event_type, "occurred_at": e.created_at, "data": {}})
    created_at = factory.LazyFunction(timezone.now)
    next_attempt_at = factory.LazyAttribute(lambda e: e.created_at)


class AlertChannelFactory(factory.django.DjangoModelFactory):
    """A queue's PagerDuty service by default (kind="slack" or "webhook" with a url for the others)."""

    class Meta:
        model = AlertChannel

    queue = factory.SubFactory(QueueFactory)
    name = factory.Sequence(lambda n: f"alerts-{n}")
    kind = AlertChannelKind.PAGERDUTY
    routing_key = "R0UT1NGKEY0F32CHARACTERS00000000"
    secret = "pagerduty-webhook-secret"
    events = factory.LazyFunction(lambda: [AlertEvent.ITEM_OPENED])
    timeout_seconds = 2.0


class EnrichmentProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EnrichmentProvider

    name = factory.Sequence(lambda n: f"Enricher {n}")
    url = "http://127.0.0.1:9/unused"
    auth_value = "Bearer test-key"
    timeout_seconds = 1.0
    max_attempts = 4


class AccountFactory(factory.Factory):
    """An account saved through `account_upsert`, as the API and the import save one (normalised keys, domain
    rows). `owner` is a user or None."""

    class Meta:
        model = Account

    account_id = factory.Sequence(lambda n: f"ACC-{n:05d}")
    name = factory.Sequence(lambda n: f"Company {n} Ltd")
    domains = factory.Sequence(lambda n: [f"company{n}.com"])
    phone = ""
    country = "GB"
    owner = None
    territory = ""
    attributes = factory.LazyFunction(dict)

    @classmethod
    def _create(cls, model_class, account_id, owner=None, **fields):
        from routing.accounts.services import account_upsert

        data = {**fields, "owner": owner.get_username() if owner is not None else None}
        return account_upsert(account_id=account_id, data=data)[0]


def personal_token(user, **kwargs) -> str:
    """A personal API token for `user`, in clear (as its owner copies it from the console)."""
    return personal_token_create(user=user, **kwargs)[1]


class WorkingHoursFactory(factory.django.DjangoModelFactory):
    """A person's week (routing.availability): Monday to Friday, 09:00-17:00 in `timezone` unless told."""

    class Meta:
        model = WorkingHours
        django_get_or_create = ("user",)

    user = factory.SubFactory(UserFactory)
    timezone = "UTC"
    hours = factory.LazyFunction(lambda: {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")})


class TimeOffFactory(factory.django.DjangoModelFactory):
    """A period a person is away: [start, end) in UTC."""

    class Meta:
        model = TimeOff

    user = factory.SubFactory(UserFactory)
    note = "Holiday"


class ExperimentFactory(factory.django.DjangoModelFactory):
    """A running experiment on a rule that has a staging version (stage the rule first: tests/governance/helpers)."""

    class Meta:
        model = Experiment

    rule = factory.SubFactory(RuleFactory)
    candidate = factory.LazyAttribute(lambda experiment: experiment.rule.staging_version)
    baseline = factory.LazyAttribute(lambda experiment: experiment.rule.production_version)
    percent = 50
    max_leads = 1000
    criteria = factory.LazyFunction(lambda: {"route_latency": -50, "manual_touches": -70})
    seed = factory.Sequence(lambda n: f"seed-{n}")
    started_by = factory.LazyAttribute(lambda experiment: experiment.rule.owner)
    started_at = factory.LazyFunction(timezone.now)


class ExperimentLeadFactory(factory.django.DjangoModelFactory):
    """A lead an experiment enrolled, as routing leaves it: received, then assigned `latency` later (the default
    lead is assigned a second after receipt; pass lead__assigned_at=None for one still waiting)."""

    class Meta:
        model = ExperimentLead

    experiment = factory.SubFactory(ExperimentFactory)
    arm = Arm.PRODUCTION
    lead = factory.SubFactory(
        LeadFactory,
        status=LeadStatus.ASSIGNED,
        assigned_at=factory.LazyAttribute(lambda lead: lead.received_at + timezone.timedelta(seconds=1)),
    )
    at = factory.LazyAttribute(lambda enrolled: enrolled.lead.received_at)
