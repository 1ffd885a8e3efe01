"""Engine throughput: lead evaluations per second with 10, 100 and 1,000 production rules.

Each evaluation is what routing does per lead: find the first matching rule and collect the inputs it
read. Two lead mixes: `mixed` (synthetic demo leads, matching anywhere or nowhere) and `no match`
(leads from a country no rule lists, so every rule is tried and fails at its last leaf at the latest:
the worst case). Goal: >= 20,000 evaluations/s with 100 rules.

Each figure is measured interleaved with two floors of the same job over the same leads (bench/_baselines.py):
- `inputs`: read the fields the rule set reads, once each, into the inputs dict a decision reports, and decide
  nothing: the cost of touching the data, whatever the rule count.
- `plain`: the same rules as the Python one would write by hand for known field types: the fields read
  once into locals, each leaf one bare comparison (a None check only before an ordering or a suffix), and
  the inputs dict of the deciding rule built from the locals. It must pick the same rule for every lead
  (checked), with the same inputs. It is the compiled engine without its type guards (which let it take
  arbitrary lead data) and without the `Match` object.
Ratios are floor evals/s / engine evals/s: how many times a floor's cost an evaluation costs.
"""

import random
import time

from _baselines import cost_ratio
from _setup import machine, setup_django, sized, synthetic_condition

setup_django()

from routing.conditions import fields_read  # noqa: E402
from routing.demo.leads import synthetic_lead  # noqa: E402
from routing.engine import RuleSet  # noqa: E402
from routing.intake import LeadIn  # noqa: E402
from routing.models import Lead, RuleVersion, Source  # noqa: E402


def rule_for(i: int, rng: random.Random) -> RuleVersion:
    """A realistic rule (see synthetic_condition)."""
    condition = synthetic_condition(i, rng)
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


def plain_python(rules: list[RuleVersion], *, decide: bool = True):
    """The rules as plain Python (see the module docstring): a function of a lead view returning
    (index or -1, inputs). With decide=False, no rule is tried: the `inputs` floor."""
    ordered = sorted(rules, key=lambda rule: (rule.priority, rule.rule_id))
    fields: dict[str, str] = {}
    for rule in ordered:
        for field in fields_read(rule.condition):
            fields.setdefault(field, f"v{len(fields)}")
    lines = ["def plain(L):", "    g = L.get"]
    for field, local in fields.items():
        if field.startswith("attributes."):
            lines.append(f"    {local} = g('attributes') or {{}}")
            for key in field.split(".")[1:]:
                lines.append(f"    {local} = {local}.get({key!r}) if type({local}) is dict else None")
        else:
            lines.append(f"    {local} = g({field!r})")
    constants: dict[str, object] = {}

    def const(value) -> str:
        constants[f"k{len(constants)}"] = value
        return f"k{len(constants) - 1}"

    def leaf(node) -> str:
        v, op, value = fields[node["field"]], node["op"], node["value"]
        if op == "eq":
            return f"{v} == {const(value)}"
        if op == "in":
            return f"{v} in {const(frozenset(value))}"
        if op in ("gt", "gte"):
            return f"{v} is not None and {v} {'>' if op == 'gt' else '>='} {const(value)}"
        if op == "endswith":
            return f"{v} is not None and {v}.endswith({const(value)})"
        raise ValueError(f"plain_python: no hand-written form for {op!r}")

    seen: list[str] = []
    for index, rule in enumerate(ordered if decide else []):
        seen += [f for f in fields_read(rule.condition) if f not in seen]
        test = " and ".join(f"({leaf(node)})" for node in rule.condition["all"])
        inputs = ", ".join(f"{f!r}: {fields[f]}" for f in seen)
        lines.append(f"    if {test}: return {index}, {{{inputs}}}")
    lines.append("    return -1, {" + ", ".join(f"{f!r}: {v}" for f, v in fields.items()) + "}")
    namespace = dict(constants)
    exec(compile("\n".join(lines), "<plain rules>", "exec"), namespace)  # noqa: S102 - bench-only, our own rules
    return namespace["plain"]


def run_for(evaluate, views: list[dict], seconds: float) -> tuple[int, float]:
    """Evaluations done and seconds taken, in slices of 200 leads until `seconds` have passed."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for first in range(0, len(views), 200):
            for view in views[first : first + 200]:
                evaluate(view)
            done += len(views[first : first + 200])
            if time.perf_counter() - start >= seconds:
                break
    return done, time.perf_counter() - start


def measure(ruleset: RuleSet, floors: dict, views: list[dict], rounds: int = sized(5, 1)) -> dict:
    """Evaluations/s of the engine and of each floor, interleaved: floor, engine, floor, engine … in `rounds`
    rounds (engine 0.2 s, each floor 0.1 s per round), so that the machine's noise hits them alike."""
    totals = {name: [0, 0.0] for name in ("engine", *floors)}
    for _ in range(rounds):
        for name, evaluate, seconds in (
            ("inputs", floors["inputs"], 0.1),
            ("engine", ruleset.evaluate, 0.1),
            ("plain", floors["plain"], 0.1),
            ("engine", ruleset.evaluate, 0.1),
        ):
            done, took = run_for(evaluate, views, seconds)
            totals[name][0] += done
            totals[name][1] += took
    return {name: done / took for name, (done, took) in totals.items()}


def main():
    rng = random.Random(7)
    leads = sized(2000, 200)
    mixed = lead_views(leads, rng, matchable=True)
    unmatched = lead_views(leads, rng, matchable=False)
    print(f"Engine benchmark on {machine()}")
    print(
        "floors, measured interleaved with each figure: inputs = read the fields the rules read into the inputs "
        "dict, decide nothing; plain = the same rules as hand-written Python for known types (same decisions, "
        "checked); ratio = floor evals/s / engine evals/s"
    )
    print(f"{'rules':>6} {'compile ms':>11} {'mixed evals/s':>14} {'matched %':>10} {'no-match evals/s':>17}")
    detail = []
    for count in sized((10, 100, 1000), (10, 100)):
        rules = [rule_for(i, rng) for i in range(count)]
        start = time.perf_counter()
        ruleset = RuleSet(rules)
        compile_ms = (time.perf_counter() - start) * 1000
        floors = {"inputs": plain_python(rules, decide=False), "plain": plain_python(rules)}
        matched = sum(ruleset.first_match_index(v) >= 0 for v in mixed) / len(mixed) * 100
        assert not any(ruleset.first_match_index(v) >= 0 for v in unmatched), "a no-match lead matched"
        for view in mixed + unmatched:
            index, inputs = floors["plain"](view)
            assert index == ruleset.first_match_index(view), "the plain floor decides otherwise"
            assert inputs == ruleset.evaluate(view).inputs, "the plain floor reads otherwise"
        rates = {"mixed": measure(ruleset, floors, mixed), "no match": measure(ruleset, floors, unmatched)}
        print(
            f"{count:>6} {compile_ms:>11.1f} {rates['mixed']['engine']:>14,.0f} {matched:>9.0f}% "
            f"{rates['no match']['engine']:>17,.0f}"
        )
        detail.append((count, rates))
    print("\nagainst the floors (same run, interleaved); ratio = floor evals/s / engine evals/s:")
    print(
        f"{'rules':>6} {'leads':>9} {'engine evals/s':>15} {'inputs floor':>13} {'ratio':>6} "
        f"{'plain floor':>12} {'ratio':>6}  goal"
    )
    for count, rates in detail:
        for mix, r in rates.items():
            goal = "no goal"
            if count == 100:
                goal = f">= 20,000 evals/s: {'met' if r['engine'] >= 20_000 else 'NOT met'}"
            print(
                f"{count:>6} {mix:>9} {r['engine']:>15,.0f} {r['inputs']:>13,.0f} "
                f"{cost_ratio(r['inputs'], r['engine']):>5.1f}x {r['plain']:>12,.0f} "
                f"{cost_ratio(r['plain'], r['engine']):>5.1f}x  {goal}"
            )


if __name__ == "__main__":
    main()
