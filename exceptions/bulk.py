"""Bulk triage: one action (acknowledge, assign, resolve, reopen) over many items, a selection or every item a
list filter matches. Chunked, each chunk committed on its own, so a long run never holds rows for long; each
item gets its own audit trail as if it were acted on alone (and its own log line, exceptions.services); the
answer says what was done and why each other item was skipped, and so does one log line per run."""

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.http import QueryDict

from exceptions import services
from exceptions.filters import ExceptionFilter, groups_incidents
from exceptions.models import UNRESOLVED_STATUSES, ExceptionItem, ExceptionStatus, Resolution

BULK_ACTIONS = ("acknowledge", "assign", "resolve", "reopen")
MAX_BULK_ITEMS = 5_000  # a bigger filter is narrowed first: the answer must come back within a request
CHUNK = 200
logger = logging.getLogger(__name__)


@dataclass
class BulkOutcome:
    done: list[int] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"id": …, "reason": …}

    def skip(self, item_id: int, reason: str) -> None:
        self.skipped.append({"id": item_id, "reason": reason})


def bulk_problems(*, action: str, count: int, assignee=None, resolution: str = "", note: str = "") -> list[str]:
    """What is wrong with the request before anything is touched (an empty list: go ahead)."""
    problems = []
    if action not in BULK_ACTIONS:
        problems.append(f"Unknown action {action!r}; use one of {', '.join(BULK_ACTIONS)}.")
    if count == 0:
        problems.append("No items: select some, or give a filter that matches some.")
    if count > MAX_BULK_ITEMS:
        problems.append(f"{count:,} items; at most {MAX_BULK_ITEMS:,} at once: narrow the filter.")
    if action == "assign" and assignee is None:
        problems.append("Choose who to assign the items to.")
    if action == "assign" and assignee is not None and not assignee.is_active:
        problems.append(f"{assignee.get_username()} is not an active account.")
    if action != "resolve" and (resolution or note.strip()):
        problems.append(f"A resolution code and a note go with resolve only, not {action}: clear them, or resolve.")
    if action == "resolve":
        if resolution not in Resolution.values:
            problems.append(f"Choose a resolution code: one of {', '.join(Resolution.values)}.")
        if not note.strip():
            problems.append("Give a note: it is recorded on every item resolved.")
    return problems


def filtered_item_ids(query) -> tuple[list[int], dict]:
    """The ids of every item the list's filters select (a QueryDict, or a dict whose lists are repeated
    parameters), at most MAX_BULK_ITEMS + 1 of them so that a request over the cap is told so; or the filters'
    errors, field by field. Without `incident`, `in_incident` or a search, items in incidents are left out, as
    on the list (act on the incident instead)."""
    if not isinstance(query, QueryDict):
        params = QueryDict(mutable=True)
        for key, value in query.items():
            params.setlist(key, [str(v) for v in value] if isinstance(value, list) else [str(value)])
        query = params
    if groups_incidents(query):
        # As the list shows it: an incident's items are acted on through the incident, unless asked for.
        query = query.copy()
        query["in_incident"] = "false"
    filters = ExceptionFilter(query, queryset=ExceptionItem.objects.all())
    if not filters.is_valid():
        return [], {key: [str(m) for m in messages] for key, messages in filters.errors.items()}
    return list(filters.ordered().values_list("pk", flat=True)[: MAX_BULK_ITEMS + 1]), {}


def exceptions_bulk(
    *, action: str, item_ids: list[int], by, assignee=None, resolution: str = "", note: str = ""
) -> BulkOutcome:
    """Apply `action` to every item of `item_ids` that allows it. Raises services.InvalidAction naming every
    problem of the request (nothing done)."""
    ids = list(dict.fromkeys(item_ids))
    problems = bulk_problems(action=action, count=len(ids), assignee=assignee, resolution=resolution, note=note)
    if problems:
        raise services.InvalidAction(" ".join(problems))
    outcome = BulkOutcome()
    known = set(ExceptionItem.objects.filter(pk__in=ids).values_list("pk", flat=True))
    for missing in (i for i in ids if i not in known):
        outcome.skip(missing, "no such item")
    present = [i for i in ids if i in known]
    for start in range(0, len(present), CHUNK):
        chunk = present[start : start + CHUNK]
        with transaction.atomic():
            if action == "acknowledge":
                done = services.exceptions_bulk_acknowledge(item_ids=chunk, by=by)[0]
                _record(outcome, chunk, done, allowed=[ExceptionStatus.OPEN])
            elif action == "assign":
                done = services.exceptions_bulk_assign(item_ids=chunk, to=assignee, by=by)[0]
                _record(outcome, chunk, done, allowed=UNRESOLVED_STATUSES)
            else:
                _one_by_one(outcome, chunk, action=action, by=by, resolution=resolution, note=note.strip())
    skipped = [entry["id"] for entry in outcome.skipped]
    who = by.get_username() if by else "the system"
    logger.info(
        "Bulk %s by %s: %d item(s) done, %d skipped%s.",
        action,
        who,
        len(outcome.done),
        len(skipped),
        f" ({', '.join(f'#{i}' for i in skipped[:20])}{', …' if len(skipped) > 20 else ''})" if skipped else "",
        # every item done has a line of its own (exceptions.services); the skipped ones are named here
        extra={
            "action": f"bulk.{action}",
            "by": who,
            "done": len(outcome.done),
            "skipped_ids": skipped[:100],
        },
    )
    return outcome


def _record(outcome: BulkOutcome, chunk: list[int], done: list[int], *, allowed) -> None:
    outcome.done += done
    left = set(chunk) - set(done)
    for item in ExceptionItem.objects.filter(pk__in=left).select_related("resolved_by", "acknowledged_by"):
        outcome.skip(item.pk, services.skipped_state(item, allowed))
    outcome.skipped.sort(key=lambda entry: entry["id"])


def _one_by_one(outcome: BulkOutcome, chunk: list[int], *, action: str, by, resolution: str, note: str) -> None:
    """Resolve or reopen each item as the item page would (its clocks, events, held leads, outbox), each in a
    savepoint: one that cannot change is skipped with the reason, the others go on."""
    items = ExceptionItem.objects.filter(pk__in=chunk).select_related("lead", "queue", "assignee").order_by("pk")
    for item in items:
        try:
            with transaction.atomic():
                if action == "resolve":
                    services.exception_resolve(item=item, by=by, resolution=resolution, note=note)
                else:
                    services.exception_reopen(item=item, by=by)
        except services.ExceptionConflict as exc:
            outcome.skip(item.pk, exc.message)
        except services.InvalidAction as exc:
            outcome.skip(item.pk, str(exc))
        else:
            outcome.done.append(item.pk)
