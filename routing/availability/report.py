"""The distribution report: per queue and period, each member's leads against their fair share, and every
reason they sat picks out, read from the ledger (DistributionDay) in one grouped query.

Two fair shares per member, summed pick by pick: *while in* (weight / weights of the members eligible for that
pick) and *if always in* (weight / weights of every member). The rotation is exact per pick, so a member's
leads differ from their share while in only by turns given back (credit back), turns made up (catch up) and
the fraction of the round in progress; the gap between the two shares is what they missed by being out.
"""

import calendar
import csv
import datetime as dt
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import Sum

from routing.availability.ledger import SKIPPED
from routing.availability.models import DistributionDay
from routing.availability.schedule import Why
from routing.models import AssignmentStrategy, DistributionPeriod, Queue, ReturnPolicy
from routing.text import csv_cell

MAX_DAYS = 366
SKIPS = {column: reason for reason, column in SKIPPED.items()}  # ledger column -> reason
COUNTS = ("assigned", "credited_back", "expected", "expected_if_always_in", *SKIPS)
CSV_COLUMNS = (
    "member",
    "in_queue_now",
    "assigned",
    "share",
    "expected_while_in",
    "expected_if_always_in",
    "difference",
    "credited_back",
    *SKIPS,
    "explanation",
)


@dataclass
class MemberShare:
    username: str
    in_queue_now: bool
    assigned: int = 0
    credited_back: int = 0
    expected: float = 0.0
    expected_if_always_in: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> picks sat out
    share: float = 0.0  # of the queue's leads given by the strategy in the period
    explanation: str = ""

    @property
    def difference(self) -> float:
        return round(self.assigned - self.expected, 1)


@dataclass
class DistributionReport:
    queue: Queue
    start: dt.date
    end: dt.date  # inclusive
    total: int
    members: list[MemberShare]
    policies: dict[str, str]


def period_bounds(period: str, day: dt.date) -> tuple[dt.date, dt.date]:
    """The day, ISO week (Monday to Sunday) or calendar month holding `day`, as inclusive dates."""
    if period == DistributionPeriod.DAY:
        return day, day
    if period == DistributionPeriod.WEEK:
        monday = day - dt.timedelta(days=day.weekday())
        return monday, monday + dt.timedelta(days=6)
    last = calendar.monthrange(day.year, day.month)[1]
    return day.replace(day=1), day.replace(day=last)


def report_range(params, *, queue: Queue, today: dt.date) -> tuple[dt.date, dt.date, str]:
    """(start, end, period) from `period`+`date`, or `start`+`end`; ValueError names the parameter to fix."""
    if params.get("start") or params.get("end"):
        start, end = _date(params, "start"), _date(params, "end")
        if end < start:
            raise ValueError("end: the end date is before the start date.")
        if (end - start).days + 1 > MAX_DAYS:
            raise ValueError(f"end: a report covers at most {MAX_DAYS} days.")
        return start, end, ""
    period = params.get("period") or queue.distribution_period
    if period not in DistributionPeriod.values:
        raise ValueError(f"period: use {', '.join(DistributionPeriod.values)}.")
    day = _date(params, "date") if params.get("date") else today
    try:
        start, end = period_bounds(period, day)
    except (OverflowError, ValueError):
        raise ValueError("date: give a date between the years 1 and 9998.") from None
    return start, end, period


def _date(params, name: str) -> dt.date:
    raw = params.get(name)
    try:
        return dt.date.fromisoformat(str(raw or "").strip())
    except ValueError:
        raise ValueError(f"{name}: give a date as YYYY-MM-DD.") from None


def distribution_report(*, queue: Queue, start: dt.date, end: dt.date) -> DistributionReport:
    rows = (
        DistributionDay.objects.filter(queue=queue, day__gte=start, day__lte=end)
        .values("user_id")
        .annotate(**{name: Sum(name) for name in COUNTS})
    )
    sums = {row["user_id"]: row for row in rows}
    member_ids = set(queue.memberships.values_list("user_id", flat=True))
    names = dict(get_user_model().objects.filter(pk__in=sums.keys() | member_ids).values_list("pk", "username"))
    total = sum(row["assigned"] for row in sums.values())
    members = []
    for user_id in sorted(sums.keys() | member_ids, key=lambda pk: names.get(pk, "")):
        row = sums.get(user_id) or {}
        share = MemberShare(
            username=names.get(user_id, f"#{user_id}"),
            in_queue_now=user_id in member_ids,
            assigned=row.get("assigned") or 0,
            credited_back=row.get("credited_back") or 0,
            expected=round(row.get("expected") or 0.0, 1),
            expected_if_always_in=round(row.get("expected_if_always_in") or 0.0, 1),
            skipped={reason: row.get(column) or 0 for column, reason in SKIPS.items()},
        )
        share.share = share.assigned / total if total else 0.0
        share.explanation = _explain(share, queue)
        members.append(share)
    return DistributionReport(queue, start, end, total, members, _policies(queue))


def _explain(member: MemberShare, queue: Queue) -> str:
    """Why this member got what they got, in words a rep can check."""
    name, parts = member.username, []
    gap = member.difference
    if abs(gap) < 1:
        parts.append(f"{name} got {member.assigned}, their fair share while in ({member.expected:g})")
    else:
        more = "more" if gap > 0 else "fewer"
        parts.append(
            f"{name} got {member.assigned}, {abs(gap):g} {more} than their fair share while in ({member.expected:g})"
        )
        reasons = []
        if member.credited_back:
            reasons.append(f"{member.credited_back} turn(s) given back after leads were taken from them")
        if queue.return_policy == ReturnPolicy.CATCH_UP and gap > 0:
            reasons.append("turns made up for picks they sat out earlier in the period (catch up)")
        if reasons:
            parts[-1] += " because of " + " and ".join(reasons)
    sat_out = {reason: n for reason, n in member.skipped.items() if n}
    if sat_out:
        words = ", ".join(f"{n} {Why.WORDS[reason]}" for reason, n in sat_out.items())
        missed = member.expected_if_always_in - member.expected
        parts.append(f"they sat out {sum(sat_out.values())} pick(s): {words}")
        if missed >= 0.5 and queue.return_policy == ReturnPolicy.KEEP_PLACE:
            parts.append(f"under keep place those {missed:.1f} lead(s) of share went to whoever was in")
    elif member.expected_if_always_in:
        parts.append("they were eligible for every pick")
    if not member.in_queue_now:
        parts.append("no longer in the queue")
    return "; ".join(parts) + "."


def _policies(queue: Queue) -> dict[str, str]:
    return {
        "strategy": AssignmentStrategy(queue.strategy).label,
        "return_policy": ReturnPolicy(queue.return_policy).label,
        "distribution_period": DistributionPeriod(queue.distribution_period).label,
        "when_everyone_away": queue.get_when_everyone_away_display(),
        "credit_back": "on" if queue.credit_back else "off",
        "cap": f"{queue.max_open_per_member} open leads" if queue.max_open_per_member else "none",
    }


def report_as_dict(report: DistributionReport) -> dict:
    return {
        "queue": report.queue.name,
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "total": report.total,
        "policies": report.policies,
        "members": [
            {
                "member": m.username,
                "in_queue_now": m.in_queue_now,
                "assigned": m.assigned,
                "share": round(m.share, 4),
                "expected_while_in": m.expected,
                "expected_if_always_in": m.expected_if_always_in,
                "difference": m.difference,
                "credited_back": m.credited_back,
                "skipped": m.skipped,
                "explanation": m.explanation,
            }
            for m in report.members
        ],
    }


def distribution_csv(report: DistributionReport, out) -> None:
    """One row per member; every text cell through the formula guard (usernames come from people)."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for m in report.members:
        values = [
            m.username,
            m.in_queue_now,
            m.assigned,
            f"{m.share:.4f}",
            m.expected,
            m.expected_if_always_in,
            m.difference,
            m.credited_back,
            *(m.skipped[reason] for reason in SKIPS.values()),
            m.explanation,
        ]
        writer.writerow([csv_cell(value) for value in values])
