"""Who answers for a queue: its owner (escalation level 1) and escalation contact (level 2).

Any queue can hold exception items (no matching rule, nobody eligible, overflow, a routing SLA breach), so
every queue needs both, as active people; an escalation to a queue without them reaches nobody. Queues the
product creates on its own (Triage, Manual review) get the system owner, HANDOFF_SYSTEM_OWNER, when that
names an active account. `manage.py check` and a console banner list the queues still lacking one.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from routing.models import Queue

# A person who can receive an escalation: set, and active.
_OWNER_MISSING = Q(owner__isnull=True) | Q(owner__is_active=False)
_CONTACT_MISSING = Q(escalation_contact__isnull=True) | Q(escalation_contact__is_active=False)


def system_owner():
    """The account HANDOFF_SYSTEM_OWNER names, if it exists and is active; else None (one query, none when
    the setting is empty)."""
    username = settings.HANDOFF["SYSTEM_OWNER"]
    if not username:
        return None
    return get_user_model().objects.filter(username=username, is_active=True).first()


def auto_queue_defaults(**defaults) -> dict:
    """`get_or_create` defaults for a queue the product creates: the system owner as owner and escalation
    contact. Callables, so the account is read only when the queue is actually created (once for both)."""
    found = []

    def owner():
        if not found:
            found.append(system_owner())
        return found[0]

    return {**defaults, "owner": owner, "escalation_contact": owner}


def queues_without_owner() -> QuerySet[Queue]:
    """Queues lacking an active owner or an active escalation contact, by name."""
    return Queue.objects.filter(_OWNER_MISSING | _CONTACT_MISSING).order_by("name")


def queue_gaps(queue: Queue) -> list[str]:
    """What the queue lacks, in words (its owner and contact must be loaded or are read)."""
    gaps = []
    if queue.owner_id is None:
        gaps.append("no owner")
    elif not queue.owner.is_active:
        gaps.append(f"its owner {queue.owner.get_username()} is deactivated")
    if queue.escalation_contact_id is None:
        gaps.append("no escalation contact")
    elif not queue.escalation_contact.is_active:
        gaps.append(f"its escalation contact {queue.escalation_contact.get_username()} is deactivated")
    return gaps


def escalation_recipient(queue: Queue, level: int) -> int | None:
    """Who a level-`level` escalation of the queue goes to (level 1: the owner; level 2: the escalation
    contact, else the owner), only if active; None: nobody (its owner and contact must be loaded)."""
    people = [queue.owner] if level == 1 else [queue.escalation_contact, queue.owner]
    for person in people:
        if person is not None and person.is_active:
            return person.pk
    return None


def unreached_problem(queue: Queue, level: int) -> str:
    """The text an item carries when its level-`level` escalation reached nobody (fits escalation_problem)."""
    who = "owner" if level == 1 else "escalation contact or owner"
    return f"Level {level} escalation reached nobody: queue {queue.name} has no active {who}."[:200]


def enrichment_review_queue() -> Queue:
    """Where high-intent leads go when enrichment failed (and every lead during an enrichment incident, or whose
    enrichment answer was invalid): a person reviews them within 30 minutes."""
    queue, _ = Queue.objects.get_or_create(
        name=settings.HANDOFF["ENRICHMENT_REVIEW_QUEUE"], defaults=auto_queue_defaults(ack_sla_minutes=30)
    )
    return queue
