"""What a weekly sign-off covers: the rule as it was when signed. Any later draft edit (a contract field
changed in the rule's history; test-result refreshes are not in it), promotion, forced promotion or rollback
reopens that week's sign-off. Reads are set-based: two queries whatever the number of rules."""

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, OuterRef, Q, Subquery

from routing.governance.models import PromotionKind, RulePromotion, RuleSignOff
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
