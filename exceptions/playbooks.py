"""First-responder playbooks: a reason's steps, or one queue's steps for a reason, shown on every item of it.

Versioned by rows: `playbook_save` writes the next version (never updates one), with its audit event in the
same transaction. The current playbook of a (reason, queue) is its highest version; an empty body withdraws
it. An item shows its queue's playbook for its reason if one is current, else the reason's own.
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.models import PLAYBOOK_MAX_CHARS, ExceptionReason, Playbook

PLAYBOOK_HISTORY_SHOWN = 50


class PlaybookRefused(ValueError):
    """Nothing was saved; the message says what to fix."""


class PlaybookConflict(PlaybookRefused):
    """Someone saved a newer version after the editor opened the form: nothing was saved."""


def playbook_save(*, reason: str, queue=None, body: str, by, expected_version: int | None) -> Playbook:
    """Save `body` as the next version of the reason's playbook (of `queue`'s override when given).
    `expected_version`: the current version the editor saw (None: there was none); a newer one is refused,
    so two admins editing at once do not silently overwrite each other."""
    if reason not in ExceptionReason.values:
        raise PlaybookRefused(f"Unknown reason {reason!r}; use one of {', '.join(ExceptionReason.values)}.")
    body = (body or "").strip().replace("\r\n", "\n")
    if len(body) > PLAYBOOK_MAX_CHARS:
        raise PlaybookRefused(
            f"A playbook is at most {PLAYBOOK_MAX_CHARS} characters ({len(body)} given): keep the first steps, "
            "link to longer runbooks."
        )
    rows = Playbook.objects.filter(reason=reason, queue=queue)
    current = rows.aggregate(v=Max("version"))["v"]
    if current != expected_version:
        newest = rows.select_related("edited_by").order_by("-version").first()
        if newest is None:
            raise PlaybookConflict("The playbook you edited is gone (its queue was deleted); reload the page.")
        raise PlaybookConflict(
            f"Version {current} was saved by {newest.edited_by.get_username()} at {newest.edited_at:%Y-%m-%d %H:%M} "
            "UTC after you opened the form; nothing was saved. Reload, compare, and save again."
        )
    now = timezone.now()
    try:
        with transaction.atomic():
            playbook = Playbook.objects.create(
                reason=reason, queue=queue, body=body, version=(current or 0) + 1, edited_by=by, edited_at=now
            )
            audit_record(
                action=AuditAction.PLAYBOOK_SAVED,
                actor=by,
                outcome="withdrawn" if not body else f"v{playbook.version}",
                at=now,
                data={
                    "reason": reason,
                    "queue": queue.name if queue else None,
                    "version": playbook.version,
                    "chars": len(body),
                },
            )
    except IntegrityError:  # the same version saved by someone else between our read and our insert
        raise PlaybookConflict(
            f"Someone saved version {(current or 0) + 1} at the same moment; nothing was saved. Reload and save again."
        ) from None
    return playbook


def playbook_for(*, reason: str, queue_id: int | None) -> Playbook | None:
    """The playbook an item of this reason in this queue shows: the queue's current one if it has a body, else
    the reason's current one if it has a body. One query (DISTINCT ON the queue: at most two rows)."""
    where = Q(queue__isnull=True) | Q(queue_id=queue_id) if queue_id else Q(queue__isnull=True)
    current = list(
        Playbook.objects.filter(where, reason=reason)
        .select_related("edited_by", "queue")
        .order_by("queue_id", "-version")
        .distinct("queue_id")
    )
    specific = next((p for p in current if p.queue_id is not None), None)
    general = next((p for p in current if p.queue_id is None), None)
    for playbook in (specific, general):
        if playbook is not None and playbook.body:
            return playbook
    return None


@dataclass(frozen=True)
class ReasonPlaybooks:
    reason: str
    label: str
    current: Playbook | None  # the reason's own, current version (its body may be empty: withdrawn)
    overrides: list[Playbook]  # queues' current versions


def playbooks_overview() -> list[ReasonPlaybooks]:
    """Every reason with its current playbook and its queues' current overrides (one query)."""
    current = (
        Playbook.objects.select_related("queue", "edited_by")
        .order_by("reason", "queue_id", "-version")
        .distinct("reason", "queue_id")
    )
    by_reason: dict[str, list[Playbook]] = {}
    for playbook in current:
        by_reason.setdefault(playbook.reason, []).append(playbook)
    overview = []
    for reason, label in ExceptionReason.choices:
        rows = by_reason.get(reason, [])
        overview.append(
            ReasonPlaybooks(
                reason=reason,
                label=label,
                current=next((p for p in rows if p.queue_id is None), None),
                overrides=sorted((p for p in rows if p.queue_id is not None), key=lambda p: p.queue.name),
            )
        )
    return overview


def playbook_history(*, reason: str, queue_id: int | None) -> list[Playbook]:
    """Its versions, newest first (the last PLAYBOOK_HISTORY_SHOWN)."""
    where = Q(queue_id=queue_id) if queue_id else Q(queue__isnull=True)
    rows = Playbook.objects.filter(where, reason=reason)
    return list(rows.select_related("edited_by").order_by("-version")[:PLAYBOOK_HISTORY_SHOWN])
