"""Reads for the governance screens and API: rule rows, overrides per week, shadow results, changes since
the last sign-off, and version diffs."""

import datetime as dt
from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone

from audit.models import Override
from routing.accounts.models import accounts_state
from routing.engine import candidate_versions
from routing.governance.diffs import FieldDiff, contract_diff
from routing.governance.gates import CaseResult, results_from_json
from routing.governance.metrics import RuleExceptions, rule_exceptions
from routing.governance.models import (
    CANDIDATE_CHANGES,
    PromotionKind,
    RulePromotion,
    RuleSignOff,
    RuleVersion,
    ShadowDecision,
    iso_week_start,
)
from routing.governance.services import tests_stale
from routing.governance.sign_offs import ChangeSet, PendingChange, RuleChange, change_sets, changes_after_sign_off
from routing.models import Rule


def this_week(now=None) -> dt.date:
    return iso_week_start(timezone.localtime(now or timezone.now()))


def week_bounds(week: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = timezone.make_aware(dt.datetime.combine(week, dt.time.min))
    return start, start + dt.timedelta(days=7)


def override_counts(week: dt.date) -> dict[int, int]:
    """Manual overrides per rule (the rule that had decided the lead) in the ISO week starting `week`."""
    start, end = week_bounds(week)
    rows = Override.objects.filter(at__gte=start, at__lt=end, rule__isnull=False).values("rule_id")
    return dict(rows.annotate(n=Count("id")).values_list("rule_id", "n"))


def override_flag_threshold() -> int:
    return settings.HANDOFF["OVERRIDE_FLAG_THRESHOLD"]


NOT_RUN = "not run"


def case_results(rule: Rule) -> list[CaseResult] | None:
    """The draft's stored test results (computed when it was saved or its tests were run; never here); None
    when they could not run, or were never run (`rule.test_run_at` tells which)."""
    return results_from_json(rule.test_results)


@dataclass
class RuleRow:
    rule: Rule
    overrides_this_week: int
    flagged: bool
    last_sign_off: RuleSignOff | None
    signed_this_week: bool
    test_status: str  # stored: passing, N failing, none, cannot run; or "not run"
    tests_run_at: dt.datetime | None
    tests_stale: bool  # the draft (condition, cases, queue) changed since the stored results were computed
    # Changes made after this week's sign-off, which reopen it (empty when not signed this week).
    changed_since_sign_off: list[RuleChange] = field(default_factory=list)
    # Changes since the last sign-off a sign-off would cover (set by the screens that show it: awaiting_review).
    awaiting_review: int = 0

    @property
    def reopened(self) -> bool:
        return bool(self.changed_since_sign_off)

    @property
    def owner_inactive(self) -> bool:
        """The owner was deactivated: flagged, and the rule moves no stage until reassigned."""
        return bool(self.rule.owner_id and not self.rule.owner.is_active)

    @property
    def needs_sign_off(self) -> bool:
        return bool(self.rule.production_version_id and not self.signed_this_week)


def rule_rows(
    *, now=None, owner=None, signer=None, rule_id: int | None = None, with_results: bool = False
) -> list[RuleRow]:
    """Every rule (or one owner's, or one), with what the rules list shows: five queries whatever the count.
    Test status is the stored one; no test case runs here. `with_results` also loads each case's result.
    `signer`: the rules a person owns or backs up (their "My rules")."""
    week = this_week(now)
    rules = Rule.objects.select_related(
        "owner", "backup_owner", "queue", "staging_version", "production_version"
    ).order_by("priority", "id")
    if not with_results:
        rules = rules.defer("test_results")
    if owner is not None:
        rules = rules.filter(owner=owner)
    if signer is not None:
        rules = rules.filter(Q(owner=signer) | Q(backup_owner=signer))
    if rule_id is not None:
        rules = rules.filter(pk=rule_id)
    rules = list(rules)
    overrides = override_counts(week)
    latest = {}
    for sign_off in RuleSignOff.objects.filter(rule__in=rules).select_related("by").order_by("rule_id", "-week"):
        latest.setdefault(sign_off.rule_id, sign_off)
    threshold = override_flag_threshold()
    accounts = cache(accounts_state)  # asked once, and only when a rule reads account fields
    # Any change after this week's sign-off reopens it (two queries, only over the rules signed this week).
    signed_ids = [rule_id for rule_id, sign_off in latest.items() if sign_off.week == week]
    reopened = changes_after_sign_off(week=week, rule_ids=signed_ids) if signed_ids else {}

    def signed(rule) -> bool:
        sign_off = latest.get(rule.pk)
        return bool(sign_off and sign_off.week == week and rule.pk not in reopened)

    return [
        RuleRow(
            rule=rule,
            overrides_this_week=overrides.get(rule.pk, 0),
            flagged=overrides.get(rule.pk, 0) >= threshold,
            last_sign_off=latest.get(rule.pk),
            signed_this_week=signed(rule),
            test_status=rule.test_status if rule.test_run_at else NOT_RUN,
            tests_run_at=rule.test_run_at,
            tests_stale=rule.test_run_at is not None and tests_stale(rule, accounts),
            changed_since_sign_off=reopened.get(rule.pk, []),
        )
        for rule in rules
    ]


@dataclass
class ShadowSummary:
    since: dt.datetime
    decisions: int  # leads the staging version would have taken
    gained: int  # ... of which production sent elsewhere
    lost: int  # leads production gave this rule that the candidate sends elsewhere
    samples: list = field(default_factory=list)


def shadow_summary(rule: Rule) -> ShadowSummary | None:
    """What the rule's staging version would have done to real leads since it was frozen."""
    staged = rule.staging_version
    if staged is None:
        return None
    mine = Q(candidate_rule=rule) | Q(production_rule=rule)  # lets the (rule, at) indexes serve it
    recent = ShadowDecision.objects.filter(mine, at__gte=staged.created_at)
    counts = recent.aggregate(
        decisions=Count("id", filter=Q(candidate_rule=rule)),
        gained=Count("id", filter=Q(candidate_rule=rule, differs=True)),
        lost=Count("id", filter=Q(production_rule=rule, differs=True) & ~Q(candidate_rule=rule)),
    )
    samples = list(
        recent.filter(differs=True).select_related("lead", "production_queue", "candidate_queue").order_by("-at")[:10]
    )
    return ShadowSummary(since=staged.created_at, samples=samples, **counts)


def version_diff(older, newer) -> list[FieldDiff]:
    """Each contract field that differs between two versions (or a version and the draft), as a line-level
    diff people read (routing/governance/diffs.py); `older` None means everything is new."""
    return contract_diff(older, newer)


def versions_with_diffs(rule: Rule) -> list[tuple[RuleVersion, list[FieldDiff]]]:
    versions = list(rule.versions.select_related("owner", "queue", "created_by").order_by("number"))
    out, previous = [], None
    for version in versions:
        out.append((version, version_diff(previous, version)))
        previous = version
    return list(reversed(out))


@dataclass
class SignOffView:
    row: RuleRow
    since: dt.datetime | None  # the last sign-off, or None if never signed
    changes: ChangeSet  # every change since the last sign-off, and which of them the reader has viewed
    overrides: list
    exceptions: RuleExceptions  # caused by the rule this week, and downstream of it (counted apart)
    cases: list[CaseResult] | None
    shadow: ShadowSummary | None

    @property
    def awaiting_review(self) -> int:
        """Changes a sign-off of this production rule would cover (0 for a rule not in production)."""
        return len(self.changes) if self.row.rule.production_version_id else 0

    @property
    def forced(self) -> list[PendingChange]:
        return [c for c in self.changes.changes if c.promotion == PromotionKind.FORCED]


def my_rules(*, owner, now=None) -> list[SignOffView]:
    """Everything an owner (or backup owner) reviews before signing each rule off for the week: rules with
    changes awaiting review (each change's diff to open) come first, then those only due their weekly
    sign-off."""
    now = now or timezone.now()
    start, end = week_bounds(this_week(now))
    rows = rule_rows(now=now, signer=owner, with_results=True)
    pending = change_sets(rule_ids=[row.rule.pk for row in rows], viewer=owner) if rows else {}
    views = []
    for row in rows:
        rule = row.rule
        views.append(
            SignOffView(
                row=row,
                since=row.last_sign_off.at if row.last_sign_off else None,
                changes=pending.get(rule.pk) or ChangeSet(rule.pk),
                overrides=list(
                    Override.objects.filter(rule=rule, at__gte=start, at__lt=end).select_related(
                        "lead", "by", "from_queue", "to_queue", "to_assignee"
                    )
                ),
                exceptions=rule_exceptions(rule=rule, start=start, end=end),
                cases=case_results(rule),
                shadow=shadow_summary(rule),
            )
        )
    # Changes awaiting review first (those that reopened this week's sign-off before the rest), then rules
    # only due their weekly sign-off, then those signed.
    return sorted(views, key=lambda v: (not v.awaiting_review, not v.row.reopened, v.row.signed_this_week))


def awaiting_review(rows: list[RuleRow]) -> dict[int, int]:
    """{rule id: changes awaiting review} for the production rules among `rows` that have any: one query."""
    ids = [row.rule.pk for row in rows if row.rule.production_version_id]
    return {rule_id: len(found) for rule_id, found in change_sets(rule_ids=ids).items()} if ids else {}


def unsigned_production_rules(*, week: dt.date) -> list[Rule]:
    """Production rules with no sign-off for `week`, or whose sign-off a later change reopened: the Monday
    reminder names them. Four queries."""
    signed = set(RuleSignOff.objects.filter(week=week).values_list("rule_id", flat=True))
    reopened = changes_after_sign_off(week=week)
    rules = Rule.objects.exclude(production_version=None).select_related("owner").order_by("name")
    return [rule for rule in rules if rule.pk not in signed or rule.pk in reopened]


def unsigned_from_rows(rows: list[RuleRow]) -> list[Rule]:
    """The same as `unsigned_production_rules` for this week, read from rows already loaded (no query)."""
    return sorted((row.rule for row in rows if row.needs_sign_off), key=lambda rule: rule.name)


def last_candidate_change() -> dt.datetime | None:
    return RulePromotion.objects.filter(kind__in=CANDIDATE_CHANGES).aggregate(at=Max("at"))["at"]


@dataclass
class CandidateRule:
    rule: Rule
    version: int
    staged: bool  # the staging version stands in for production (or the rule is new)


def candidate_rules(run=None) -> list[CandidateRule]:
    """The rule versions a replay evaluates: the run's, or the current candidate set's."""
    if run is not None:
        wanted = {int(rule_id): number for rule_id, number in run.candidate.items()}
    else:
        wanted = dict(candidate_versions().values_list("rule_id", "number"))
    rules = Rule.objects.filter(pk__in=wanted).select_related("production_version").order_by("priority", "id")
    return [
        CandidateRule(
            rule=rule,
            version=wanted[rule.pk],
            staged=not rule.production_version_id or rule.production_version.number != wanted[rule.pk],
        )
        for rule in rules
    ]
