"""A rule's contract as the rules file writes it, and the comparisons between the file and what is stored.

The file names people and queues (`owner`, `then.queue`), never database ids, so a file's content and a stored
version or draft compare field by field without writing anything: that is how an import knows it has
nothing to do, and how `--dry-run` says what it would do."""

from decimal import Decimal
from typing import Any

from routing.models import RuleStage

# What a version freezes (Rule.CONTRACT_FIELDS), by its name in the file; the order export writes them in.
CONTENT_KEYS = (
    "name",
    "owner",
    "priority",
    "when",
    "then",
    "sla_minutes",
    "description",
    "inputs",
    "outputs",
    "rollback_plan",
    "test_cases",
    "target_exception_rate",
    "target_latency_p95_minutes",
    "target_overrides_per_week",
    "target_sla_adherence",
    "source_of_truth",
)
DECIMAL_KEYS = ("target_exception_rate", "target_latency_p95_minutes", "target_sla_adherence")
TEXT_KEYS = ("description", "inputs", "outputs", "rollback_plan", "source_of_truth")
# A key a file leaves out means this (so old files, written before a field existed, mean "none").
DEFAULTS: dict[str, Any] = {
    "owner": None,
    "sla_minutes": None,
    "test_cases": [],
    "target_overrides_per_week": None,
    **dict.fromkeys(TEXT_KEYS, ""),
    **dict.fromkeys(DECIMAL_KEYS, None),
}
# A production rule's entry may carry its staging version and its draft; a staging rule's, its draft.
BLOCKS = {RuleStage.PRODUCTION: ("staging", "draft"), RuleStage.STAGING: ("draft",), RuleStage.DRAFT: ()}

Content = dict[str, Any]


def _decimal(value) -> Decimal | None:
    # Through str, so the file's 0.1 is Decimal("0.1") as stored, not the float's binary expansion.
    return None if value is None else Decimal(str(value))


def canonical(content: dict) -> Content:
    """Every content key, defaults filled in and numbers in one form: two canonical contents are equal
    exactly when a version frozen from one would hold the same contract as the other."""
    out = {key: content.get(key, DEFAULTS.get(key)) for key in CONTENT_KEYS}
    then = content["then"]
    out["then"] = {"queue": then["queue"], **({"assignee": then["assignee"]} if then.get("assignee") else {})}
    for key in DECIMAL_KEYS:
        out[key] = _decimal(out[key])
    return out


def content_of(contract) -> Content:
    """The canonical content of a Rule (its draft) or a RuleVersion."""
    return canonical(
        {
            "name": contract.name,
            "owner": contract.owner.get_username() if contract.owner_id else None,
            "priority": contract.priority,
            "when": contract.condition,
            "then": {"queue": contract.queue.name, "assignee": contract.assign_to},
            "sla_minutes": contract.sla_minutes,
            "description": contract.description,
            "inputs": contract.inputs,
            "outputs": contract.outputs,
            "rollback_plan": contract.rollback_plan,
            "test_cases": contract.test_cases,
            "target_exception_rate": contract.target_exception_rate,
            "target_latency_p95_minutes": contract.target_latency_p95_minutes,
            "target_overrides_per_week": contract.target_overrides_per_week,
            "target_sla_adherence": contract.target_sla_adherence,
            "source_of_truth": contract.source_of_truth,
        }
    )


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def as_file(content: Content, keys=CONTENT_KEYS) -> dict:
    """`keys` of a canonical content as JSON-ready file fields."""
    return {key: _number(content[key]) if key in DECIMAL_KEYS else content[key] for key in keys}


def changed_keys(content: Content, base: Content | None) -> list[str]:
    """The keys where `content` differs from `base` (every key when there is no base)."""
    return [key for key in CONTENT_KEYS if base is None or content[key] != base[key]]


def difference(content: Content, base: Content) -> dict:
    """A block: only what `content` changes over `base`."""
    return as_file(content, changed_keys(content, base))


def overlay(base: Content, block: dict) -> Content:
    """`base` with a block's keys put over it (a block's `then` replaces the whole `then`)."""
    return canonical({**base, **block})


def rule_key(item: dict) -> str:
    """The name the rule has once imported (its draft's): what an entry is matched to a stored rule by."""
    for block in ("draft", "staging"):
        if isinstance(item.get(block), dict) and isinstance(item[block].get("name"), str):
            return item[block]["name"]
    return item["name"]


def wanted(item: dict) -> tuple[Content | None, Content | None, Content]:
    """What a well-formed entry asks for: (production, staging, draft) contents; None for a stage the entry
    does not describe. The top-level fields are what runs at the entry's `stage`; a `staging` block is a
    production rule's staging version over them; a `draft` block is the working copy over the furthest of
    those. An entry without blocks (every file before blocks existed) asks for its fields at its stage, and
    for the draft to hold them too."""
    stage = item.get("stage", RuleStage.DRAFT)
    top = canonical(item)
    production = top if stage == RuleStage.PRODUCTION else None
    staging = top if stage == RuleStage.STAGING else None
    if production is not None and "staging" in item:
        staging = overlay(top, item["staging"])
    draft = overlay(staging or production or top, item.get("draft", {})) if stage != RuleStage.DRAFT else top
    return production, staging, draft
