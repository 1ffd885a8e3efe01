"""Capture schema versions: what reading a lead by its schema version adds to intake's validation, per lead.

Intake validates every posted lead with the compiled pydantic model (`LeadIn`); since capture schemas have
versions, each lead is first read by its version (routing/intake_schema.py): which version, which fields are
columns, what moves under attributes. Measured in-process over the same synthetic leads, interleaved rounds:

- floor: `LeadIn.model_validate` alone (what intake did per lead before versions);
- default: `validate_posted_lead` for a lead naming no version (the source's default, the newest): the common case;
- named: the lead says `"schema_version": "2"`;
- custom field: version 3 lists `utm_source`, which moves under attributes;
- keep unknown: a source that keeps unknown fields, one per lead (kept under attributes, with a warning).
"""

import argparse
import datetime as dt
import random
import time

from _setup import machine, recreate_database, sized

recreate_database()

from django.utils import timezone  # noqa: E402

from routing.capture.services import schema_version_register  # noqa: E402
from routing.demo.leads import synthetic_lead  # noqa: E402
from routing.intake import LeadIn, validate_posted_lead  # noqa: E402
from routing.intake_schema import versions_cache  # noqa: E402
from routing.models import Source, UnknownFieldPolicy  # noqa: E402


def per_lead_us(work, payloads) -> float:
    start = time.perf_counter()
    for payload in payloads:
        work(payload)
    return (time.perf_counter() - start) / len(payloads) * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=sized(20_000, 500))
    parser.add_argument("--rounds", type=int, default=sized(5, 1))
    args = parser.parse_args()
    print(machine())
    rng = random.Random(7)
    base = [synthetic_lead(rng) for _ in range(args.leads)]
    schema_version_register(
        version="3",
        fields=[*LeadIn.model_fields.keys() - {"schema_version"}, "utm_source"],
        effective_from=timezone.now(),
    )
    versions_cache.clear()
    rejecting = Source(name="reject", unknown_fields=UnknownFieldPolicy.REJECT)
    keeping = Source(name="keep", unknown_fields=UnknownFieldPolicy.KEEP)
    cases = {
        "floor (LeadIn alone)": (lambda p: LeadIn.model_validate(p), base),
        "default version": (lambda p: validate_posted_lead(p, rejecting), base),
        "named version 2": (lambda p: validate_posted_lead(p, rejecting), [{**p, "schema_version": "2"} for p in base]),
        "v3, custom field": (
            lambda p: validate_posted_lead(p, rejecting),
            [{**p, "schema_version": "3", "utm_source": "ads"} for p in base],
        ),
        "keep unknown field": (lambda p: validate_posted_lead(p, keeping), [{**p, "utm_term": "x"} for p in base]),
    }
    for work, payloads in cases.values():  # every path once, and the version cache filled
        work(payloads[0])
    figures: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (work, payloads) in cases.items():
            figures[name].append(per_lead_us(work, payloads))
    floor = min(figures["floor (LeadIn alone)"])
    print(f"{args.leads:,} synthetic leads, {args.rounds} interleaved rounds; best round, µs per lead:")
    for name, values in figures.items():
        best = min(values)
        print(f"  {name:<22} {best:7.2f} µs  (+{best - floor:5.2f} µs, ×{best / floor:.2f} the floor)")
    _, shaped, errors = validate_posted_lead({**base[0], "schema_version": "3", "utm_source": "ads"}, rejecting)
    assert errors is None and shaped.version == "3", errors
    print(f"at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
