"""Why a rule did or did not match a lead, in words: the first condition that failed and the value it saw.

Truth always comes from the compiled condition (routing/conditions.py), so the explanation can never
disagree with what the engine decided; this module only walks down to the part that failed."""

from dataclasses import dataclass
from typing import Any

from routing.accounts.leads import sample_account
from routing.conditions import compile_condition, fields_read, read_field
from routing.intake import sample_fields
from routing.models import Lead

OP_WORDS = {
    "eq": "=",
    "ne": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
    "startswith": "starts with",
    "endswith": "ends with",
    "matches": "matches",
    "exists": "is present",
    "missing": "is missing",
}


def condition_text(node: dict) -> str:
    """A condition as one readable line: `lifecycle_stage = 'mql' and (country in ['US', 'CA'] or …)`."""
    for key in ("all", "any"):
        if key in node:
            parts = [condition_text(child) for child in node[key]]
            joined = f" {'and' if key == 'all' else 'or'} ".join(
                f"({part})" if (" and " in part or " or " in part) else part for part in parts
            )
            return joined
    if "not" in node:
        return f"not ({condition_text(node['not'])})"
    if node["op"] in ("exists", "missing"):
        return f"{node['field']} {OP_WORDS[node['op']]}"
    return f"{node['field']} {OP_WORDS[node['op']]} {node['value']!r}"


def condition_lines(node: dict, depth: int = 0) -> list[str]:
    """A condition as lines, one per leaf, each group's members indented under it: "all of:",
    "  company_size ≥ 200", "  not: country = 'US'". Stable for one condition, so two versions diff line by
    line. Raises KeyError/TypeError on a malformed condition, like `condition_text`."""
    indent = "  " * depth
    for key, words in (("all", "all of:"), ("any", "any of:")):
        if key in node:
            return [indent + words] + [line for child in node[key] for line in condition_lines(child, depth + 1)]
    if "not" in node:
        inner = node["not"]
        if "all" in inner or "any" in inner or "not" in inner:
            return [indent + "not:"] + condition_lines(inner, depth + 1)
        return [f"{indent}not: {condition_text(inner)}"]
    return [indent + condition_text(node)]


@dataclass(frozen=True)
class Failure:
    path: str  # where in the condition, e.g. when.all[1]
    condition: str  # the failing part, readable
    seen: dict[str, Any]  # field -> the value the engine saw

    def __str__(self):
        values = ", ".join(f"{field} was {value!r}" for field, value in self.seen.items())
        return f"{self.condition} — {values}" if values else self.condition


def first_failure(condition: dict, view: dict, where: str = "when") -> Failure | None:
    """None when the condition holds; otherwise the first leaf (in reading order) that made it fail."""
    if compile_condition(condition)(view):
        return None
    return _failed_part(condition, view, where)


def _failed_part(node: dict, view: dict, where: str) -> Failure:
    if "all" in node:
        for index, child in enumerate(node["all"]):
            if not compile_condition(child)(view):
                return _failed_part(child, view, f"{where}.all[{index}]")
    if "any" in node:
        # Every alternative failed; the first one says the most about what the author expected.
        return _failed_part(node["any"][0], view, f"{where}.any[0]")
    if "not" in node:
        return Failure(path=where, condition=condition_text(node), seen=_values(node["not"], view))
    return Failure(path=where, condition=condition_text(node), seen={node["field"]: read_field(view, node["field"])})


def _values(node: dict, view: dict) -> dict[str, Any]:
    return {field: read_field(view, field) for field in fields_read(node)}


def sample_view(sample: Any, *, with_account: bool = True) -> dict:
    """A pasted or test-case lead as the engine would see it, validated like intake (lead_id optional), with
    its account matched against the accounts as they stand (a query; skipped when nothing reads `account.*`)."""
    fields = sample_fields(sample)
    view = Lead.view_from(fields)
    view["account"] = sample_account(fields).view if with_account else None
    return view


@dataclass(frozen=True)
class Verdict:
    version: Any  # the RuleVersion tried
    matched: bool
    failure: Failure | None


@dataclass(frozen=True)
class Explanation:
    verdicts: list[Verdict]  # every rule tried, in evaluation order, up to and including the one that matched
    missing_contact: bool  # routing stops before any rule when the lead has no email and no phone

    @property
    def decided(self) -> Verdict | None:
        return self.verdicts[-1] if self.verdicts and self.verdicts[-1].matched else None


def explain(versions, view: dict) -> Explanation:
    """Walk the rules as the engine does (priority, then rule id) and say why each one before the match
    did not match."""
    if not view.get("email") and not view.get("phone"):
        return Explanation(verdicts=[], missing_contact=True)
    verdicts = []
    for version in sorted(versions, key=lambda v: (v.priority, v.rule_id)):
        failure = first_failure(version.condition, view)
        verdicts.append(Verdict(version=version, matched=failure is None, failure=failure))
        if failure is None:
            break
    return Explanation(verdicts=verdicts, missing_contact=False)
