"""Engine throughput: lead evaluations per second with 10, 100 and 1,000 production rules.

Each evaluation is what routing does per lead: find the first matching rule and collect the inputs it
read. Two lead mixes: `mixed` (synthetic demo leads, matching anywhere or nowhere) and `no match`
(leads from a country no rule lists, so every rule is tried and fails at its last leaf at the latest:
the worst case). Goal: >= 20,000 evaluations/s with 100 rules.
"""

import random
import time

from _setup import machine, setup_django

setup_django()

from routing.demo.leads import synthetic_lead  # noqa: E402
from routing.engine import RuleSet  # noqa: E402
from routing.intake import LeadIn  # noqa: E402
from routing.models import Lead, RuleVersion, Source  # noqa: E402

STAGES = ["lead", "mql", "sql"]
COUNTRIES = ["US", "GB", "DE", "FR", "NG", "IN", "JP", "BR", "CA", "SE"]


def rule_for(i: int, rng: random.Random) -> RuleVersion:
    """A realistic rule: two to four leaves mixing equality, ranges, sets, strings and attributes."""
    leaves = [
        {"field": "lifecycle_stage", "op": "eq", "value": STAGES[i % 3]},
        {"field": "engagement_score", "op": "gt", "value": rng.randint(10, 60)},
        {"field": "attributes.utm.source", "op": "in", "value": rng.sample(["google", "linkedin", "direct"], 2)},
        {"field": "company_size", "op": "gte", "value": rng.choice([5, 20, 50])},
        {"field": "email", "op": "endswith", "value": ".example"},
    ]
    # The country leaf comes last: "no match" leads pass many leaves before it fails.
    country = {"field": "country", "op": "in", "value": rng.sample(COUNTRIES, 5)}
    condition = {"all": [*rng.sample(leaves, rng.randint(1, 3)), country]}
    return RuleVersion(
        rule_id=i + 1,
        name=f"rule {i}",
        number=1,
        priority=i,
        condition=condition,
        queue_id=1,
        owner_id=1,
        sla_minutes=15,
    )


def lead_views(n: int, rng: random.Random, *, matchable: bool) -> list[dict]:
    source = Source(id=1, name="bench")
    views = []
    for _ in range(n):
        payload = synthetic_lead(rng)
        if not matchable:
            payload["country"] = "AU"  # no rule lists it: every rule is tried
        lead = Lead(origin=source, **LeadIn.model_validate(payload).model_dump(exclude={"occurred_at"}))
        views.append(lead.routing_view())
    return views


def measure(ruleset: RuleSet, views: list[dict], seconds: float = 1.5) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for view in views:
            ruleset.evaluate(view)
        done += len(views)
    return done / (time.perf_counter() - start)


def main():
    rng = random.Random(7)
    mixed = lead_views(2000, rng, matchable=True)
    unmatched = lead_views(2000, rng, matchable=False)
    print(f"Engine benchmark on {machine()}")
    print(f"{'rules':>6} {'compile ms':>11} {'mixed evals/s':>14} {'matched %':>10} {'no-match evals/s':>17}")
    for count in (10, 100, 1000):
        rules = [rule_for(i, rng) for i in range(count)]
        start = time.perf_counter()
        ruleset = RuleSet(rules)
        compile_ms = (time.perf_counter() - start) * 1000
        matched = sum(ruleset.first_match_index(v) >= 0 for v in mixed) / len(mixed) * 100
        assert not any(ruleset.first_match_index(v) >= 0 for v in unmatched), "a no-match lead matched"
        print(
            f"{count:>6} {compile_ms:>11.1f} {measure(ruleset, mixed):>14,.0f} {matched:>9.0f}% "
            f"{measure(ruleset, unmatched):>17,.0f}"
        )


if __name__ == "__main__":
    main()
