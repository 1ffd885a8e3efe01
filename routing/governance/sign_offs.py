"""What a weekly sign-off covers: the rule as it was when signed, and the change set it reviewed. Any later
draft edit (a contract field changed in the rule's history; test-result refreshes are not in it), promotion,
forced promotion or rollback reopens that week's sign-off. Reads are set-based: two queries whatever the
number of rules."""

import datetime as dt
import re
from dataclasses import dataclass, field

from django.db import connection, models
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from routing.governance.models import PromotionKind, RuleChangeView, RulePromotion, RuleSignOff, RuleVersion
from routing.models import Rule

DRAFT_EDIT = "draft edit"


@dataclass(frozen=True)
class RuleChange:
    rule_id: int
    at: dt.datetime
    kind: str  # DRAFT_EDIT or a PromotionKind value
    what: str  # the fields edited, or the version the promotion moved
    by: str  # username, "" when unknown

    @property
    def label(self) -> str:
        if self.kind == DRAFT_EDIT:
            return f"Draft edited ({self.what})"
        return f"{PromotionKind(self.kind).label} ({self.what})"


def _columns() -> list[tuple[str, str]]:
    """(field name, history column) for each contract field a draft edit can change."""
    history = Rule.history.model
    return [(name, history._meta.get_field(name).column) for name in Rule.DRAFT_FIELDS]


def _edits_sql(*, week, signed_only: bool, rule_ids, start, end) -> tuple[str, list]:
    """History rows whose contract fields differ from the row before them (LAG over each rule's history),
    after the rule's sign-off for the week (or, unless `signed_only`, any when it has none)."""
    history = Rule.history.model._meta.db_table
    users = Rule.history.model._meta.get_field("history_user").related_model._meta.db_table
    sign_offs = RuleSignOff._meta.db_table
    changed = ", ".join(
        f"CASE WHEN {col} IS DISTINCT FROM LAG({col}) OVER w THEN '{name}' END" for name, col in _columns()
    )
    # Rows are narrowed before the window only by whole rules, so each row's LAG is its real predecessor.
    inner, inner_params = [], []
    if signed_only:
        inner.append(f"id IN (SELECT rule_id FROM {sign_offs} WHERE week = %s)")
        inner_params.append(week)
    if rule_ids is not None:
        inner.append("id = ANY(%s)")
        inner_params.append(list(rule_ids))
    outer, outer_params = ["h.history_type = '~'", "(s.at IS NULL OR h.history_date > s.at)"], []
    if start is not None:
        outer.append("h.history_date >= %s")
        outer_params.append(start)
    if end is not None:
        outer.append("h.history_date < %s")
        outer_params.append(end)
    sql = f"""
        WITH h AS (
            SELECT id AS rule_id, history_date, history_type, history_user_id,
                   array_remove(ARRAY[{changed}]::text[], NULL) AS fields
            FROM {history}
            {"WHERE " + " AND ".join(inner) if inner else ""}
            WINDOW w AS (PARTITION BY id ORDER BY history_date, history_id)
        )
        SELECT h.rule_id, h.history_date, h.fields, u.username
        FROM h
        {"JOIN" if signed_only else "LEFT JOIN"} {sign_offs} s ON s.rule_id = h.rule_id AND s.week = %s
        LEFT JOIN {users} u ON u.id = h.history_user_id
        WHERE {" AND ".join(outer)} AND cardinality(h.fields) > 0
    """
    return sql, [*inner_params, week, *outer_params]


def changes_after_sign_off(
    *, week: dt.date, signed_only: bool = True, rule_ids=None, start=None, end=None
) -> dict[int, list[RuleChange]]:
    """Each rule's changes made after its sign-off for `week`, oldest first. `signed_only`: only rules signed
    that week (the reopened ones); otherwise a rule with no sign-off that week lists every change in
    [start, end). Two queries."""
    signed_at = RuleSignOff.objects.filter(rule=OuterRef("rule"), week=week).values("at")[:1]
    promotions = RulePromotion.objects.annotate(signed_at=Subquery(signed_at))
    if signed_only:
        promotions = promotions.filter(signed_at__isnull=False, at__gt=F("signed_at"))
    else:
        promotions = promotions.filter(Q(signed_at__isnull=True) | Q(at__gt=F("signed_at")))
    if rule_ids is not None:
        promotions = promotions.filter(rule_id__in=list(rule_ids))
    if start is not None:
        promotions = promotions.filter(at__gte=start)
    if end is not None:
        promotions = promotions.filter(at__lt=end)
    out: dict[int, list[RuleChange]] = {}
    for rule_id, at, kind, number, username in promotions.values_list(
        "rule_id", "at", "kind", "version__number", "by__username"
    ):
        out.setdefault(rule_id, []).append(RuleChange(rule_id, at, kind, f"v{number}", username or ""))
    sql, params = _edits_sql(week=week, signed_only=signed_only, rule_ids=rule_ids, start=start, end=end)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for rule_id, at, fields, username in cursor.fetchall():
            out.setdefault(rule_id, []).append(RuleChange(rule_id, at, DRAFT_EDIT, ", ".join(fields), username or ""))
    for changes in out.values():
        changes.sort(key=lambda change: (change.at, change.kind != DRAFT_EDIT))  # an edit before its freeze
    return out


# The change set: what a sign-off covers, and what its signer must have viewed.
#
# Everything that changed on a rule after its last sign-off (any week): each new version (promoted to
# staging), each draft edit (a contract field changed in the rule's history), and each production change
# (promoted, rolled back or forced; a forced version is listed once, as its forced promotion). Each change
# has a key that names its row, so a view of its diff (RuleChangeView) and the sign-off's record point at it.


class ChangeKind(models.TextChoices):
    VERSION = "version", "New version"
    EDIT = "edit", "Draft edit"
    PROMOTION = "promotion", "Production change"


# Promotions whose diff the owner reviews: each changes what production runs. A staging promotion is the
# new version it froze.
REVIEWED_PROMOTIONS = (PromotionKind.PRODUCTION, PromotionKind.ROLLBACK, PromotionKind.FORCED)


def change_key(kind: str, ref: int) -> str:
    return f"{kind}-{ref}"


@dataclass(frozen=True)
class PendingChange:
    rule_id: int
    kind: str  # ChangeKind
    ref: int  # the RuleVersion, history row or RulePromotion id
    at: dt.datetime
    by: str  # username, "" when unknown
    what: str  # the fields edited, or "v3"
    promotion: str = ""  # the PromotionKind of a promotion
    note: str = ""  # a promotion's comment, or a forced one's reason

    @property
    def key(self) -> str:
        return change_key(self.kind, self.ref)

    @property
    def label(self) -> str:
        if self.kind == ChangeKind.EDIT:
            return f"Draft edited ({self.what})"
        if self.kind == ChangeKind.VERSION:
            return f"New version {self.what}"
        return f"{PromotionKind(self.promotion).label} ({self.what})"


@dataclass
class ChangeSet:
    """One rule's changes since its last sign-off, oldest first, and when `viewer` opened each diff."""

    rule_id: int
    changes: list[PendingChange] = field(default_factory=list)
    viewed: dict[str, dt.datetime] = field(default_factory=dict)  # change key → first view by the viewer

    def __len__(self) -> int:
        return len(self.changes)

    @property
    def reviewed(self) -> list[tuple[PendingChange, dt.datetime | None]]:
        """Each change with when the viewer first opened its diff (None: not yet)."""
        return [(change, self.viewed.get(change.key)) for change in self.changes]

    @property
    def unviewed(self) -> list[PendingChange]:
        return [change for change in self.changes if change.key not in self.viewed]

    def as_record(self, *, viewer) -> dict:
        """What a sign-off stores: the versions, draft history ids and promotions it covers, and when its
        signer viewed each change's diff."""
        of = {kind: [c for c in self.changes if c.kind == kind] for kind in ChangeKind.values}
        return {
            "versions": [int(c.what.lstrip("v")) for c in of[ChangeKind.VERSION]],
            "draft_edits": [c.ref for c in of[ChangeKind.EDIT]],
            "promotions": [
                {"id": c.ref, "kind": c.promotion, "version": int(c.what.lstrip("v"))} for c in of[ChangeKind.PROMOTION]
            ],
            "viewed": [
                {"change": c.key, "label": c.label, "by": viewer.get_username(), "at": self.viewed[c.key].isoformat()}
                for c in self.changes
            ],
        }


def _pending_sql(rule_ids) -> tuple[str, list]:
    """Every change after each rule's last sign-off (all of them for a rule never signed): one query."""
    history = Rule.history.model._meta.db_table
    users = Rule.history.model._meta.get_field("history_user").related_model._meta.db_table
    sign_offs = RuleSignOff._meta.db_table
    versions = RuleVersion._meta.db_table
    promotions = RulePromotion._meta.db_table
    changed = ", ".join(
        f"CASE WHEN {col} IS DISTINCT FROM LAG({col}) OVER w THEN '{name}' END" for name, col in _columns()
    )
    # Narrowed only by whole rules before the window, so each history row's LAG is its real predecessor.
    only = "WHERE {} = ANY(%s)" if rule_ids is not None else ""
    ids = [list(rule_ids)] if rule_ids is not None else []
    reviewed = ", ".join(f"'{kind}'" for kind in REVIEWED_PROMOTIONS)  # our own TextChoices values
    sql = f"""
        WITH last AS (SELECT rule_id, MAX(at) AS at FROM {sign_offs} {only.format("rule_id")} GROUP BY rule_id),
        h AS (
            SELECT history_id, id AS rule_id, history_date, history_type, history_user_id,
                   array_remove(ARRAY[{changed}]::text[], NULL) AS fields
            FROM {history} {only.format("id")}
            WINDOW w AS (PARTITION BY id ORDER BY history_date, history_id)
        )
        SELECT '{ChangeKind.EDIT}', h.rule_id, h.history_id, h.history_date, u.username,
               array_to_string(h.fields, ', '), '', ''
        FROM h LEFT JOIN last s ON s.rule_id = h.rule_id LEFT JOIN {users} u ON u.id = h.history_user_id
        WHERE h.history_type = '~' AND cardinality(h.fields) > 0 AND (s.at IS NULL OR h.history_date > s.at)
        UNION ALL
        SELECT '{ChangeKind.VERSION}', v.rule_id, v.id, v.created_at, u.username, 'v' || v.number, '', ''
        FROM {versions} v LEFT JOIN last s ON s.rule_id = v.rule_id LEFT JOIN {users} u ON u.id = v.created_by_id
        WHERE NOT v.forced AND (s.at IS NULL OR v.created_at > s.at) {"AND v.rule_id = ANY(%s)" if ids else ""}
        UNION ALL
        SELECT '{ChangeKind.PROMOTION}', p.rule_id, p.id, p.at, u.username, 'v' || v.number, p.kind, p.comment
        FROM {promotions} p JOIN {versions} v ON v.id = p.version_id
        LEFT JOIN last s ON s.rule_id = p.rule_id LEFT JOIN {users} u ON u.id = p.by_id
        WHERE p.kind IN ({reviewed}) AND (s.at IS NULL OR p.at > s.at) {"AND p.rule_id = ANY(%s)" if ids else ""}
    """
    return sql, ids * 4


def change_sets(*, rule_ids=None, viewer=None) -> dict[int, ChangeSet]:
    """Each rule's change set (those of `rule_ids`, or every rule with one), and with `viewer` which of its
    changes that person has viewed. One query, two with a viewer."""
    sql, params = _pending_sql(rule_ids)
    out: dict[int, ChangeSet] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for kind, rule_id, ref, at, username, what, promotion, note in cursor.fetchall():
            change = PendingChange(rule_id, kind, ref, at, username or "", what, promotion, note)
            out.setdefault(rule_id, ChangeSet(rule_id)).changes.append(change)
    order = {ChangeKind.EDIT: 0, ChangeKind.VERSION: 1, ChangeKind.PROMOTION: 2}  # an edit before its freeze
    for change_set in out.values():
        change_set.changes.sort(key=lambda c: (c.at, order[c.kind], c.ref))
    if viewer is not None and out:
        views = RuleChangeView.objects.filter(rule_id__in=list(out), viewer=viewer)
        for rule_id, key, at in views.values_list("rule_id", "change", "at"):
            if any(change.key == key for change in out[rule_id].changes):  # not those of earlier sign-offs
                out[rule_id].viewed[key] = at
    return out


def change_set(*, rule: Rule, viewer=None) -> ChangeSet:
    return change_sets(rule_ids=[rule.pk], viewer=viewer).get(rule.pk) or ChangeSet(rule.pk)


@dataclass(frozen=True)
class ChangeDiff:
    """A change of a rule with the two contracts its diff compares (`older` None: everything is new)."""

    key: str
    label: str
    at: dt.datetime
    older: object
    newer: object


_KEY = re.compile(r"(version|edit|promotion)-([0-9]{1,18})")


def change_diff(*, rule: Rule, key: str) -> ChangeDiff | None:
    """The change `key` names, if it is one of `rule`'s (any, signed or not); None otherwise."""
    matched = _KEY.fullmatch(key or "")
    if matched is None:
        return None
    kind, ref = matched[1], int(matched[2])
    if kind == ChangeKind.VERSION:
        version = RuleVersion.objects.filter(rule=rule, pk=ref).select_related("owner", "queue").first()
        if version is None:
            return None
        older = RuleVersion.objects.filter(rule=rule, number__lt=version.number).order_by("-number").first()
        return ChangeDiff(key, f"New version v{version.number}", version.created_at, older, version)
    if kind == ChangeKind.EDIT:
        record = rule.history.filter(history_id=ref).first()
        if record is None or record.prev_record is None:
            return None
        fields = [c.field for c in record.diff_against(record.prev_record).changes if c.field in Rule.DRAFT_FIELDS]
        return ChangeDiff(key, f"Draft edited ({', '.join(fields)})", record.history_date, record.prev_record, record)
    promotion = (
        RulePromotion.objects.filter(rule=rule, pk=ref, kind__in=REVIEWED_PROMOTIONS)
        .select_related("version", "replaced")
        .first()
    )
    if promotion is None:
        return None
    label = f"{promotion.get_kind_display()} (v{promotion.version.number})"
    return ChangeDiff(key, label, promotion.at, promotion.replaced, promotion.version)


def change_view_record(*, rule: Rule, key: str, viewer, at=None) -> RuleChangeView:
    """Record that `viewer` was sent the diff of change `key` of `rule` (the first time counts)."""
    view, _ = RuleChangeView.objects.get_or_create(
        rule=rule, change=key, viewer=viewer, defaults={"at": at or timezone.now()}
    )
    return view
