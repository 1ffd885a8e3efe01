"""Readable diffs of a rule's contract (between two frozen versions, or a version and the draft), and what
the draft is against what is live: production, staging, and a version rolled back out of production.

Every field becomes lines of text and is diffed line by line, so a reviewer reads what changed instead of two
JSON blobs: the condition one line per leaf (explain.condition_lines), each test case on a line of its own,
long texts by their lines, and single values (queue, SLA, targets) as the old line removed and the new one
added. `contract_diff` is pure: its only queries are the owner and queue names of a field that changed."""

import datetime as dt
import difflib
import json
from dataclasses import dataclass
from decimal import Decimal

from django.db import models

from routing.governance.explain import condition_lines
from routing.governance.models import PRODUCTION_KINDS, PromotionKind, RulePromotion, RuleVersion
from routing.models import AssignTo, Rule


class DiffKind(models.TextChoices):
    SAME = "same", "Unchanged"
    ADDED = "added", "Added"
    REMOVED = "removed", "Removed"


@dataclass(frozen=True)
class DiffLine:
    kind: str  # DiffKind
    text: str


@dataclass(frozen=True)
class FieldDiff:
    field: str  # the contract field (Rule.DRAFT_FIELDS)
    label: str  # as people call it
    lines: list[DiffLine]

    @property
    def added(self) -> int:
        return sum(line.kind == DiffKind.ADDED for line in self.lines)

    @property
    def removed(self) -> int:
        return sum(line.kind == DiffKind.REMOVED for line in self.lines)

    def as_json(self) -> dict:
        return {
            "field": self.field,
            "label": self.label,
            "lines": [{"kind": str(line.kind), "text": line.text} for line in self.lines],
        }


LABELS = {
    "name": "Name",
    "description": "Description",
    "owner": "Owner",
    "priority": "Priority",
    "condition": "When (condition)",
    "queue": "Queue",
    "sla_minutes": "SLA",
    "inputs": "Inputs",
    "outputs": "Outputs",
    "rollback_plan": "Rollback plan",
    "test_cases": "Test cases",
    "assign_to": "Assign to",
    "target_exception_rate": "Target: exception rate",
    "target_latency_p95_minutes": "Target: route latency P95",
    "target_overrides_per_week": "Target: overrides per week",
    "target_sla_adherence": "Target: SLA adherence",
    "source_of_truth": "Source of truth",
}
assert set(LABELS) == set(Rule.DRAFT_FIELDS), "every contract field needs a label"

# Compared by column, so an unchanged owner or queue costs no query.
_BY_ID = {"owner": "owner_id", "queue": "queue_id"}
NOT_SET = "—"


def contract_diff(older, newer) -> list[FieldDiff]:
    """The contract fields that differ from `older` to `newer`, in the contract's order, each as lines.
    `older` None: nothing came before (a first version), so every field with a value is new. Either side may
    be a RuleVersion, the Rule (its draft) or one of the draft's history records."""
    changes = []
    for name in Rule.DRAFT_FIELDS:
        column = _BY_ID.get(name, name)
        before = getattr(older, column) if older is not None else None
        after = getattr(newer, column)
        if _same(before, after):
            continue
        old_lines = _lines(name, older) if older is not None else []
        new_lines = _lines(name, newer)
        lines = line_diff(old_lines, new_lines)
        if any(line.kind != DiffKind.SAME for line in lines):
            changes.append(FieldDiff(field=name, label=LABELS[name], lines=lines))
    return changes


def _same(before, after) -> bool:
    # A blank text and no value at all read the same; 90 and 90.00 are one target.
    if before in (None, "") and after in (None, ""):
        return True
    return before == after


def line_diff(old: list[str], new: list[str]) -> list[DiffLine]:
    """Every line of both sides, in order, marked same, removed or added (removed before added where lines
    were replaced)."""
    out = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(DiffLine(DiffKind.SAME, text) for text in old[i1:i2])
            continue
        out.extend(DiffLine(DiffKind.REMOVED, text) for text in old[i1:i2])
        out.extend(DiffLine(DiffKind.ADDED, text) for text in new[j1:j2])
    return out


def _lines(name: str, side) -> list[str]:
    """One field of one side as the lines a diff compares; [] when it holds nothing."""
    if name == "condition":
        return condition_as_lines(side.condition)
    if name == "test_cases":
        return [case_line(case) for case in side.test_cases or []]
    if name in ("description", "inputs", "outputs", "rollback_plan"):
        text = getattr(side, name) or ""
        return text.splitlines() or ([text] if text else [])
    value = _value(name, side)
    return [value] if value else []


def condition_as_lines(condition) -> list[str]:
    try:
        return condition_lines(condition)
    except (KeyError, TypeError, AttributeError):
        # A malformed draft (the editor refuses one, data written elsewhere may not): still show what it holds.
        return json.dumps(condition, ensure_ascii=False, indent=2, sort_keys=True).splitlines()


def case_line(case) -> str:
    """A test case on one line: `Big US account: company_size=500, country='US' → Enterprise`."""
    try:
        lead = ", ".join(f"{key}={value!r}" for key, value in sorted(case["lead"].items()))
        expect = case["expect"]
        outcome = f"queue {expect['queue']}" if "queue" in expect else "no match"
        return f"{case['name']}: {lead} → {outcome}"
    except (KeyError, TypeError, AttributeError):
        return json.dumps(case, ensure_ascii=False, sort_keys=True)


def _value(name: str, side) -> str:
    """A single-valued field as one readable line ("" when it is not set)."""
    if name == "owner":
        return side.owner.get_username() if side.owner_id else ""
    if name == "queue":
        return side.queue.name if side.queue_id else ""
    value = getattr(side, name)
    if value is None or value == "":
        return "" if name != "assign_to" else AssignTo.DEFAULT.label
    if name == "sla_minutes":
        return f"{value} min"
    if name == "assign_to":
        return AssignTo(value).label if value in AssignTo.values else str(value)
    if name == "target_exception_rate":
        return f"≤ {_number(value)}%"
    if name == "target_latency_p95_minutes":
        return f"≤ {_number(value)} min"
    if name == "target_overrides_per_week":
        return f"≤ {value} per week"
    if name == "target_sla_adherence":
        return f"≥ {_number(value)}%"
    return str(value)


def _number(value) -> str:
    """90.00 → "90", 97.50 → "97.5": a target as people write it."""
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def same_contract(a, b) -> bool:
    """Two sides (draft, version) hold the same contract: what a promotion would freeze is identical."""
    return a is not None and b is not None and all(getattr(a, f) == getattr(b, f) for f in Rule.CONTRACT_FIELDS)


@dataclass(frozen=True)
class RolledBack:
    """A version rolled back out of production: which, when, by whom and why (the rollback's promotion)."""

    version: RuleVersion
    at: dt.datetime
    by: str
    comment: str


def rolled_back_twin(rule: Rule) -> RolledBack | None:
    """The version rolled back out of production whose contract the draft repeats, or None: after a rollback
    the draft still holds what was rolled back, and promoting it again must be a decision, not one click.
    A version with the same contract that went back to production and stayed there clears it. One query."""
    promotions = (
        RulePromotion.objects.filter(rule=rule, kind__in=PRODUCTION_KINDS)
        .select_related("version", "replaced", "by")
        .order_by("at", "id")
    )
    rolled_back: list[RolledBack] = []
    for promotion in promotions:
        # In production again (a confirmed promotion, a forced one, a rollback to it): no longer "rolled back".
        rolled_back = [r for r in rolled_back if not same_contract(r.version, promotion.version)]
        if promotion.kind == PromotionKind.ROLLBACK and promotion.replaced is not None:
            rolled_back.append(
                RolledBack(promotion.replaced, promotion.at, promotion.by.get_username(), promotion.comment)
            )
    return next((r for r in reversed(rolled_back) if same_contract(rule, r.version)), None)


@dataclass(frozen=True)
class DraftStatus:
    """What is live and how the draft stands against it: what the rule's page and the API say first."""

    live: RuleVersion | None  # the production version
    live_since: dt.datetime | None
    staged: RuleVersion | None
    staged_since: dt.datetime | None
    changes: list[FieldDiff]  # the draft against production (everything, when nothing is in production)
    rolled_back: RolledBack | None  # the draft repeats a version rolled back out of production

    @property
    def differs(self) -> bool:
        """The draft is not what production runs (true when nothing is in production yet)."""
        return self.live is None or bool(self.changes)

    @property
    def live_condition_differs(self) -> bool:
        return self.live is not None and any(change.field == "condition" for change in self.changes)


def draft_status(rule: Rule) -> DraftStatus:
    """The rule's production and staging versions with when each got there, and the draft's diff against
    production. `rule` with production_version and staging_version loaded; two queries."""
    live, staged = rule.production_version, rule.staging_version
    live_since = staged_since = None
    wanted = [pk for pk in (rule.production_version_id, rule.staging_version_id) if pk]
    for version_id, kind, at in (
        RulePromotion.objects.filter(rule=rule, version_id__in=wanted).values_list("version_id", "kind", "at")
        if wanted
        else []
    ):
        if version_id == rule.production_version_id and kind in PRODUCTION_KINDS:
            live_since = max(live_since or at, at)
        if version_id == rule.staging_version_id and kind == PromotionKind.STAGING:
            staged_since = max(staged_since or at, at)
    return DraftStatus(
        live=live,
        live_since=live_since,
        staged=staged,
        staged_since=staged_since,
        changes=contract_diff(live, rule),
        rolled_back=None if same_contract(rule, live) else rolled_back_twin(rule),
    )
