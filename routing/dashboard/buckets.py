"""Latency histogram buckets, and percentiles read from bucket counts.

A latency (seconds from a lead's occurred_at to its assigned_at) falls into one bucket [lo, hi):

    under 10 seconds        1-second buckets       0 ..  9
    10 seconds to 1 minute  10-second buckets     10 .. 14
    1 minute to 1 hour      1-minute buckets      15 .. 73
    1 hour to 4 hours       5-minute buckets      74 .. 109
    4 hours to 1 day        30-minute buckets    110 .. 149
    1 day to 7 days         6-hour buckets       150 .. 173
    7 days and more         one open bucket      174

(The 1-second tier came later, so that sub-second routing reads "< 1 s": routing migration 0025 moved the
buckets stored before it up by 9, their bounds unchanged; what they held under 10 s stays "< 10 s".)

Negative latencies (a capture system's clock ahead of ours) count as 0.

Percentile method (nearest rank on buckets): of n latencies, the p-th percentile is the k-th smallest with
k = ceil(p/100 × n); walking the buckets in order, the bucket whose running count first reaches k holds it,
and the figure reported is that bucket's upper bound hi (the latency is below hi, and at least lo). So a
reported P95 of 5 min means "95% of leads were assigned in under 5 minutes", never less than the truth,
and at most one bucket width more. The open bucket reports math.inf (7 days or more)."""

import math
from collections.abc import Iterable

# (tier start, tier end, step, first bucket index), all in seconds.
TIERS = (
    (0, 10, 1, 0),
    (10, 60, 10, 10),
    (60, 3600, 60, 15),
    (3600, 14400, 300, 74),
    (14400, 86400, 1800, 110),
    (86400, 604800, 21600, 150),
)
OPEN_BUCKET = 174


def bucket_of(seconds: float) -> int:
    seconds = max(0.0, seconds)
    for start, end, step, first in TIERS:
        if seconds < end:
            return first + int((seconds - start) // step)
    return OPEN_BUCKET


def bucket_bounds(bucket: int) -> tuple[int, int | None]:
    """[lo, hi) in seconds; hi is None for the open bucket."""
    if bucket >= OPEN_BUCKET:
        return TIERS[-1][1], None
    for start, end, step, first in TIERS:
        last = first + (end - start) // step - 1
        if bucket <= last:
            lo = start + (bucket - first) * step
            return lo, lo + step
    raise ValueError(bucket)


def bucket_sql(seconds: str, floor: str) -> str:
    """The same mapping as bucket_of, as an SQL CASE over the expression `seconds` (already clamped at 0);
    `floor` is a format string for the vendor's floor of a non-negative number."""
    whens = " ".join(
        f"WHEN {seconds} < {end} THEN {first} + {floor.format(f'({seconds} - {start}) / {step}.0')}"
        for start, end, step, first in TIERS
    )
    return f"CASE {whens} ELSE {OPEN_BUCKET} END"


def percentile(counts: dict[int, int] | Iterable[tuple[int, int]], pct: float) -> float | None:
    """The pct-th percentile, in seconds, of the latencies counted per bucket ({bucket: count}), by the
    method above; None when nothing is counted, math.inf when it falls in the open bucket."""
    pairs = sorted(dict(counts).items())
    total = sum(n for _, n in pairs)
    if total == 0:
        return None
    rank = max(1, math.ceil(pct / 100 * total))
    running = 0
    for bucket, n in pairs:
        running += n
        if running >= rank:
            hi = bucket_bounds(bucket)[1]
            return math.inf if hi is None else float(hi)
    raise AssertionError("unreachable: the running count reaches the total")
