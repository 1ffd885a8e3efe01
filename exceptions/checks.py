"""System checks: every queue can hold exception items, so each needs an active owner and escalation contact
(routing.queue_owners). `manage.py check` warns; `check --deploy` makes it an error.

They read the database, so they say nothing when it is out of reach or not migrated yet (`makemigrations
--check` in `make lint`, a first `check` before `migrate`) or closed to the caller (a Celery worker runs the
checks as it starts; a test without database access): the check is about the data, not the code."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.checks import Error, Warning, register
from django.db import DatabaseError, connection, transaction

from routing.models import Queue
from routing.queue_owners import queue_gaps, queues_without_owner, system_owner

HINT = (
    "Set the queue's owner (escalation level 1) and escalation contact (level 2) in the admin (Routing → Queues), "
    "or by rules import; HANDOFF_SYSTEM_OWNER gives the queues the product creates itself (Triage, Manual review) "
    "an owner."
)
# The database out of reach or not allowed (pytest-django's guard raises RuntimeError): no finding.
UNAVAILABLE = (DatabaseError, RuntimeError)
# How many queues one message names (a database with thousands of ownerless queues stays one message).
NAMED = 20


def _migrated(*models) -> bool:
    return {model._meta.db_table for model in models} <= set(connection.introspection.table_names())


def _message() -> str | None:
    """Which queues lack an owner or contact, and what each lacks; None when every queue has both or the
    database cannot say."""
    try:
        if not _migrated(Queue, get_user_model()):
            return None
        with transaction.atomic():  # a savepoint, inside a test's or a caller's transaction
            queues = list(queues_without_owner().select_related("owner", "escalation_contact")[: NAMED + 1])
            count = queues_without_owner().count() if len(queues) > NAMED else len(queues)
    except UNAVAILABLE:
        return None
    if not count:
        return None
    named = "; ".join(f"{queue.name}: {', '.join(queue_gaps(queue))}" for queue in queues[:NAMED])
    more = f"; … and {count - NAMED} more" if count > NAMED else ""
    return (
        f"{count} queue(s) have no active owner or escalation contact, so an escalation there reaches nobody: "
        f"{named}{more}"
    )


@register()
def queue_owner_check(app_configs=None, **kwargs):
    message = _message()
    return [Warning(message, hint=HINT, id="exceptions.W001")] if message else []


@register(deploy=True)
def queue_owner_deploy_check(app_configs=None, **kwargs):
    """The same, as an error: a deployment must not run with escalations that reach nobody."""
    message = _message()
    return [Error(message, hint=HINT, id="exceptions.E001")] if message else []


@register()
def system_owner_check(app_configs=None, **kwargs):
    username = settings.HANDOFF["SYSTEM_OWNER"]
    if not username:
        return []
    try:
        if not _migrated(get_user_model()):
            return []
        with transaction.atomic():
            found = system_owner()
    except UNAVAILABLE:
        return []
    if found is not None:
        return []
    return [
        Warning(
            f"HANDOFF_SYSTEM_OWNER={username!r} names no active account, so the queues the product creates "
            "itself get no owner.",
            hint="Name an existing, active username (or create that account).",
            id="exceptions.W002",
        )
    ]


@register()
def postmortem_threshold_check(app_configs=None, **kwargs):
    """HANDOFF_POSTMORTEM_THRESHOLD is a fraction: 5 (meant as 5%) would never require a postmortem."""
    threshold = settings.HANDOFF["POSTMORTEM_THRESHOLD"]
    if 0 < threshold <= 1:
        return []
    return [
        Error(
            f"HANDOFF_POSTMORTEM_THRESHOLD={threshold} is not a fraction between 0 and 1.",
            hint="Give the share of the leads an incident must affect to need a postmortem: 0.05 for 5%.",
            id="exceptions.E002",
        )
    ]
