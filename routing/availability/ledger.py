"""The distribution ledger: per queue, member and UTC day, what the strategy gave, the share each member was due,
and the picks they sat out and why (routing.availability.models.DistributionDay).

A routing batch sums its picks in memory (`Ledger`) and writes them once per queue, inside the queue's lock,
as one upsert that adds to the day's rows: concurrent batches of other queues never touch these rows, and
batches of the same queue are serialised by the lock, so no increment is lost.
"""

import datetime as dt
from collections import defaultdict

from django.db import connection
from django.db.models import F, Sum

from routing.availability.models import DistributionDay
from routing.availability.schedule import Why

COUNTS = (
    "assigned",
    "expected",
    "expected_if_always_in",
    "skipped_away",
    "skipped_out_of_hours",
    "skipped_at_cap",
    "skipped_unavailable",
    "credited_back",
)
SKIPPED = {
    Why.AWAY: "skipped_away",
    Why.OUT_OF_HOURS: "skipped_out_of_hours",
    Why.AT_CAP: "skipped_at_cap",
    Why.UNAVAILABLE: "skipped_unavailable",
}


class Ledger:
    """One queue's picks on one UTC day, per member, summed in memory until `write`."""

    def __init__(self, queue_id: int, day: dt.date):
        self.queue_id, self.day = queue_id, day
        self.rows: dict[int, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
        # Picks are counted per state of the queue (who sat out and why), and spread over the members once, at
        # write: a batch sees a handful of states, so a pick costs one tuple, not a pass over every member.
        self.states: dict[tuple, int] = defaultdict(int)
        self.weights: dict[int, int] = {}

    def pick(self, *, weights: dict[int, int], why_not: dict[int, str], picked: int | None, times: int = 1) -> None:
        """`times` picks alike: `weights` of every active member (user id -> weight), `why_not` their reason to
        sit the pick out ("" when eligible, same keys in the same order every call), `picked` who was given the
        lead (None: nobody was)."""
        self.weights = weights
        self.states[tuple(why_not.values())] += times
        if picked is not None:
            self.rows[picked]["assigned"] += times

    def _spread(self) -> None:
        everyone = sum(self.weights.values())
        for state, times in self.states.items():
            eligible = sum(w for w, why in zip(self.weights.values(), state, strict=True) if not why)
            for (user_id, weight), reason in zip(self.weights.items(), state, strict=True):
                row = self.rows[user_id]
                row["expected_if_always_in"] += times * weight / everyone
                if reason:
                    row[SKIPPED[reason]] += times
                else:
                    row["expected"] += times * weight / eligible
        self.states.clear()

    def write(self) -> None:
        self._spread()
        _add(
            [
                (self.queue_id, user_id, self.day, *(row[name] for name in COUNTS))
                for user_id, row in sorted(self.rows.items())
            ]
        )
        self.rows.clear()


def ledger_credit_back(queue_id: int, user_id: int, day: dt.date) -> None:
    """One turn given back to a member (a lead the strategy gave them was taken away): credited_back += 1."""
    _add([(queue_id, user_id, day, *(1 if name == "credited_back" else 0 for name in COUNTS))])


def _add(rows: list[tuple]) -> None:
    """Add `rows` (queue id, user id, day, *COUNTS) to the ledger in one statement (PostgreSQL and SQLite)."""
    if not rows:
        return
    table = DistributionDay._meta.db_table
    columns = ("queue_id", "user_id", "day", *COUNTS)
    values = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
    increments = ", ".join(f"{name} = {table}.{name} + EXCLUDED.{name}" for name in COUNTS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} "
            f"ON CONFLICT (queue_id, user_id, day) DO UPDATE SET {increments}",
            [value for row in rows for value in row],
        )


def missed_shares(queue_id: int, *, since: dt.date) -> dict[int, float]:
    """Per member, the share of the queue's picks since `since` they missed by being out (positive) or got
    beyond their always-in share while others were out (negative): fair share if always in − while in."""
    rows = (
        DistributionDay.objects.filter(queue_id=queue_id, day__gte=since)
        .values("user_id")
        .annotate(missed=Sum(F("expected_if_always_in") - F("expected")))
        .values_list("user_id", "missed")
    )
    return {user_id: missed for user_id, missed in rows if missed}
