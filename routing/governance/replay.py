"""Replay: run a candidate rule set over real leads and compare with what production decided for them.

The candidate is every rule's staging version, or its production version where it has none in staging.
"Before" is the decision recorded on each lead (the queue of the rule version that decided it); "after" is
the candidate's first match, over the lead and the account it was matched to when it was routed. Leads are
read as plain values in chunks and evaluated by the compiled set, so 10,000 leads take well under a second of
engine time (bench/replay.py)."""

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from routing.dispatch import replay_enqueue
from routing.engine import RuleSet
from routing.governance.models import ReplayRun, ReplayStatus, RuleVersion
from routing.governance.services import current_candidate, may_author_rules
from routing.models import Lead, LeadStatus, Queue, Rule

DEFAULT_LIMIT = 10_000
MAX_LIMIT = 1_000_000
MOVED_KEPT = 5_000  # moved leads listed in the stored result; the count is always exact
CHUNK = 2_000
NO_MATCH = "(no match)"
MISSING_CONTACT = "(missing contact)"
ACCOUNT_VIEW = "account_match__account_view"


# Replays run on the edges worker, beside deliveries: one unfinished replay per person, and a few in all, so
# a loop of requests cannot fill the replays queue with million-lead runs. A run unfinished this long after
# its request is taken for lost (its worker died) and holds nobody back.
REPLAYS_AT_ONCE = 3
REPLAY_STALE_AFTER = dt.timedelta(hours=1)


class ReplayError(ValueError):
    pass


class ReplayBusy(ReplayError):
    """Too many replays unfinished: try again once one ends (the API answers 429)."""


def replay_request(*, by, limit: int | None = None, since=None, until=None) -> ReplayRun:
    """Record a replay of the current candidate set; run it with `replay_execute` (task or command).
    `by` None is the shell (manage.py replay_rules); a person must be a rule owner or an admin."""
    if by is not None and not may_author_rules(by):
        raise PermissionDenied("Only rule owners and admins run replays.")
    if limit is None:
        # A date range alone is still bounded: the newest MAX_LIMIT leads in it.
        limit = DEFAULT_LIMIT if since is None and until is None else MAX_LIMIT
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise ReplayError(f"Choose between 1 and {MAX_LIMIT:,} leads.")
    if since is not None and until is not None and since >= until:
        raise ReplayError("The date range is empty: 'since' must be before 'until'.")
    candidate = current_candidate()
    return ReplayRun.objects.create(
        requested_by=by, requested_at=timezone.now(), candidate=candidate, limit=limit, since=since, until=until
    )


@transaction.atomic
def replay_start(*, by, limit: int | None = None, since=None, until=None) -> ReplayRun:
    """Record a replay and have a worker run it once the record is committed (console and API); refused
    while the person has one unfinished, or REPLAYS_AT_ONCE are."""
    unfinished = ReplayRun.objects.select_for_update().filter(
        status__in=(ReplayStatus.QUEUED, ReplayStatus.RUNNING),
        requested_at__gte=timezone.now() - REPLAY_STALE_AFTER,
    )
    runs = list(unfinished.order_by("id"))  # locked: two requests at once cannot both pass the count
    own = next((run for run in runs if run.requested_by_id == by.pk), None)
    if own is not None:
        raise ReplayBusy(f"Your replay #{own.pk} is still {own.status}; start another once it has finished.")
    if len(runs) >= REPLAYS_AT_ONCE:
        raise ReplayBusy(f"{len(runs)} replays are still queued or running; start yours once one of them has finished.")
    run = replay_request(by=by, limit=limit, since=since, until=until)
    transaction.on_commit(lambda: replay_enqueue(run.pk))
    return run


def _leads(run: ReplayRun):
    leads = Lead.objects.exclude(status=LeadStatus.RECEIVED)
    if run.since is not None:
        leads = leads.filter(received_at__gte=run.since)
    if run.until is not None:
        leads = leads.filter(received_at__lt=run.until)
    return leads.order_by("-received_at", "-id")[: run.limit or MAX_LIMIT]


def replay_execute(*, run_id: int, on_progress: Callable[[int, int], None] | None = None) -> ReplayRun:
    """Evaluate the run's candidate over its leads, storing progress as it goes and the result at the end."""
    run = ReplayRun.objects.get(pk=run_id)
    if run.status == ReplayStatus.DONE:
        return run  # a redelivered task: the result is already there
    started = timezone.now()
    leads = _leads(run)
    total = leads.count()
    ReplayRun.objects.filter(pk=run.pk).update(status=ReplayStatus.RUNNING, started_at=started, total=total, done=0)
    ruleset = RuleSet(_candidate(run))
    queue_names = dict(Queue.objects.values_list("id", "name"))
    decided_by, version_names = {}, {}
    for rule_id, number, queue_id, name in RuleVersion.objects.values_list("rule_id", "number", "queue_id", "name"):
        decided_by[rule_id, number] = queue_id
        version_names[rule_id, number] = name
    staged = _staged_versions(run)
    before, after, moved = Counter(), Counter(), []
    by_rule: dict[tuple, Counter] = {}  # (rule id, version) of the rule a move is put down to -> {(from, to): n}
    moved_count = done = 0
    # The account each lead was matched to when it was routed (what its `account.*` fields were then).
    fields = ("id", "lead_id", "rule_id", "rule_version", "queue_id", *Lead.ROUTABLE_FIELDS, ACCOUNT_VIEW)
    # One ordered, limited read streamed in chunks; progress is stored after each chunk for the console.
    for row in leads.values(*fields).iterator(chunk_size=CHUNK):
        was = _recorded_decision(row, decided_by, queue_names)
        now, deciding = _candidate_decision(row, ruleset, queue_names)
        before[was] += 1
        after[now] += 1
        if was != now:
            moved_count += 1
            from_rule = _rule_ref(_recorded_rule(row), version_names)
            to_rule = _rule_ref(deciding, version_names)
            cause = _cause(from_rule, to_rule, staged)
            if cause is not None:
                by_rule.setdefault(cause, Counter())[was, now] += 1
            if len(moved) < MOVED_KEPT:
                moved.append(
                    {
                        "id": row["id"],
                        "lead_id": row["lead_id"],
                        "from": was,
                        "to": now,
                        "from_rule": from_rule,
                        "to_rule": to_rule,
                        "cause": _rule_ref(cause, version_names),  # the rule the move is put down to
                    }
                )
        done += 1
        if done % CHUNK == 0:
            ReplayRun.objects.filter(pk=run.pk).update(done=done)
            if on_progress:
                on_progress(done, total)
    if on_progress:
        on_progress(done, total)
    result = {
        "before": dict(sorted(before.items())),
        "after": dict(sorted(after.items())),
        "moved_count": moved_count,
        "moved": sorted(moved, key=lambda m: (m["from"], m["to"], m["id"])),
        "moved_truncated": moved_count > len(moved),
        "by_rule": _by_rule_summary(by_rule, version_names),
    }
    with transaction.atomic():
        ReplayRun.objects.filter(pk=run.pk).update(
            status=ReplayStatus.DONE, done=done, total=done, finished_at=timezone.now(), result=result
        )
        run.refresh_from_db()
        audit_record(
            action=AuditAction.RULES_REPLAYED,
            actor=run.requested_by,
            outcome="done",
            data={"replay_id": run.pk, "leads": run.total, "moved": moved_count, "candidate": run.candidate},
        )
    return run


def replay_fail(*, run_id: int, error: str) -> None:
    ReplayRun.objects.filter(pk=run_id).exclude(status=ReplayStatus.DONE).update(
        status=ReplayStatus.FAILED, finished_at=timezone.now(), error=error[:2000]
    )


def _candidate(run: ReplayRun) -> list[RuleVersion]:
    wanted = {(int(rule_id), number) for rule_id, number in run.candidate.items()}
    versions = RuleVersion.objects.filter(rule_id__in=[rule_id for rule_id, _ in wanted])
    return [v for v in versions if (v.rule_id, v.number) in wanted]


def _staged_versions(run: ReplayRun) -> dict[int, int]:
    """{rule id: candidate version} of the rules whose candidate is not their production version (staged, or
    new): the changes a replay tests."""
    production = dict(Rule.objects.exclude(production_version=None).values_list("id", "production_version__number"))
    return {int(rule_id): number for rule_id, number in run.candidate.items() if production.get(int(rule_id)) != number}


def _rule_ref(decider: tuple[int, int] | None, version_names: dict) -> dict | None:
    """A rule version as a moved lead names it: {id, name, version}; None for no rule (no match, no contact)."""
    if decider is None:
        return None
    rule_id, number = decider
    return {"id": rule_id, "name": version_names.get(decider, f"Rule #{rule_id}"), "version": number}


def _recorded_rule(row: dict) -> tuple[int, int] | None:
    """(rule id, version) that decided the lead when it was routed."""
    if not _has_contact(row) or row["rule_id"] is None:
        return None
    return row["rule_id"], row["rule_version"]


def _cause(from_rule: dict | None, to_rule: dict | None, staged: dict[int, int]) -> tuple[int, int] | None:
    """The rule version a move is put down to: the staged rule that now takes the lead, else the staged
    version of the rule that decided it before and now lets it go (or is passed over), else whichever rule
    decides it now (a lead routed by an older production version)."""
    if to_rule is not None and to_rule["id"] in staged:
        return to_rule["id"], to_rule["version"]
    if from_rule is not None and from_rule["id"] in staged:
        return from_rule["id"], staged[from_rule["id"]]
    ref = to_rule or from_rule
    return None if ref is None else (ref["id"], ref["version"])


def _by_rule_summary(by_rule: dict[tuple, Counter], version_names: dict) -> list[dict]:
    """Per rule version: the leads it moves and where from and to, most first (exact, unlike `moved`)."""
    summary = [
        {
            **_rule_ref(decider, version_names),
            "moved": sum(flows.values()),
            "flows": [{"from": frm, "to": to, "count": n} for (frm, to), n in sorted(flows.items(), key=_most_first)],
        }
        for decider, flows in by_rule.items()
    ]
    return sorted(summary, key=lambda entry: (-entry["moved"], entry["name"], entry["version"]))


def _most_first(item) -> tuple:
    (frm, to), n = item
    return -n, frm, to


def _has_contact(row: dict) -> bool:
    return bool(row["email"] or row["phone"])


def _recorded_decision(row: dict, decided_by: dict, queue_names: dict) -> str:
    if not _has_contact(row):
        return MISSING_CONTACT
    if row["rule_id"] is None:
        return NO_MATCH
    queue_id = decided_by.get((row["rule_id"], row["rule_version"]), row["queue_id"])
    return queue_names.get(queue_id, NO_MATCH)


def _candidate_decision(row: dict, ruleset: RuleSet, queue_names: dict) -> tuple[str, tuple[int, int] | None]:
    """The candidate set's queue for the lead, and the (rule id, version) that would decide it (None: none)."""
    if not _has_contact(row):
        return MISSING_CONTACT, None  # routing checks contact details before any rule
    view = Lead.view_from(row)
    view["account"] = row[ACCOUNT_VIEW]
    index = ruleset.first_match_index(view)
    if index < 0:
        return NO_MATCH, None
    rule = ruleset.rules[index]
    return queue_names[rule.queue_id], (rule.id, rule.version)


@dataclass(frozen=True)
class RuleMoves:
    """One rule version's share of a replay's moves: how many leads, from which queues to which."""

    rule_id: int
    name: str
    version: int
    moved: int
    flows: list[dict]  # [{from, to, count}], most first

    @property
    def sentence(self) -> str:
        """ "moves 12 leads to Enterprise: 10 from Sales, 2 from Support" (one destination), else each flow."""
        leads = f"{self.moved} lead{'s' if self.moved != 1 else ''}"
        destinations = {flow["to"] for flow in self.flows}
        if len(destinations) == 1:
            parts = ", ".join(f"{flow['count']} from {flow['from']}" for flow in self.flows)
            return f"moves {leads} to {destinations.pop()}: {parts}"
        return f"moves {leads}: " + ", ".join(f"{f['count']} from {f['from']} to {f['to']}" for f in self.flows)


def replay_moves(run: ReplayRun) -> list[RuleMoves]:
    """The run's moves put down to the rules that caused them; empty for a result stored before replays
    recorded it."""
    return [
        RuleMoves(rule_id=e["id"], name=e["name"], version=e["version"], moved=e["moved"], flows=e["flows"])
        for e in run.result.get("by_rule", [])
    ]
