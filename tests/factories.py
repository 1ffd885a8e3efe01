"""factory-boy factories for every model the tests build."""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from exceptions.models import ExceptionItem, ExceptionReason
from routing.models import Lead, LeadStatus, Queue, QueueMembership, Rule, RuleStage, Source


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

    name = factory.Sequence(lambda n: f"Rule {n}")
    owner = factory.SubFactory(UserFactory)
    priority = factory.Sequence(lambda n: 10 * (n + 1))
    stage = RuleStage.PRODUCTION
    condition = factory.LazyFunction(lambda: {"field": "lifecycle_stage", "op": "eq", "value": "mql"})
    queue = factory.SubFactory(QueueFactory)
    description = "Routes test leads."


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
