"""The condition builder's server side: check a condition as it is typed, and say what it would match among the
newest leads (the engine's own compile_condition over the same view routing builds: the lead's routable fields
plus the account it was matched to)."""

from dataclasses import dataclass, field

from django.urls import reverse

from routing.accounts.models import Account, AccountMatch
from routing.conditions import (
    ACCOUNT_FIELDS,
    LEAD_FIELDS,
    OPS,
    ConditionError,
    compile_condition,
    fields_read,
    read_field,
    validate_condition,
)
from routing.governance.explain import condition_text
from routing.models import Lead, Queue

SAMPLE_SIZE = 1_000  # the newest leads by received_at that "would match N of M" counts over
MAX_EXAMPLES = 5
# The editor asks for confirmation of a condition matching every one of the newest leads, once there are this
# many: among a handful of demo leads, matching all of them says little.
CATCH_ALL_MIN_LEADS = 20
EMPTY_CONDITION = "Add at least one condition: a rule without one would match every lead."


@dataclass(frozen=True)
class ConditionCheck:
    valid: bool
    errors: list[dict] = field(default_factory=list)  # [{location, message}], location like when.all[1].value
    text: str = ""
    matches: int = 0
    of: int = 0
    examples: list[dict] = field(default_factory=list)

    @property
    def matches_all(self) -> bool:
        return self.valid and self.of > 0 and self.matches == self.of

    def as_dict(self) -> dict:
        return {
            "valid": self.valid,
            "errors": self.errors,
            "text": self.text,
            "matches": self.matches,
            "of": self.of,
            "matches_all": self.matches_all,
            "examples": self.examples,
        }


def condition_problem(condition) -> ConditionError | None:
    """Why `condition` cannot be saved, located; an empty condition is refused before the schema is asked."""
    if condition in (None, {}, ""):
        return ConditionError("when", EMPTY_CONDITION)
    try:
        validate_condition(condition)
    except ConditionError as exc:
        return exc
    return None


def recent_lead_views(limit: int = SAMPLE_SIZE) -> list[tuple[dict, dict]]:
    """(row, routing view) for the newest `limit` leads, in two queries: the leads, then their accounts."""
    columns = ("pk", "first_name", "last_name", "email", "company", *Lead.ROUTABLE_FIELDS)
    rows = list(Lead.objects.order_by("-received_at", "-pk").values(*dict.fromkeys(columns))[:limit])
    accounts = dict(
        AccountMatch.objects.filter(lead_id__in=[row["pk"] for row in rows]).values_list("lead_id", "account_view")
    )
    out = []
    for row in rows:
        view = Lead.view_from(row)
        view["account"] = accounts.get(row["pk"])
        out.append((row, view))
    return out


def condition_check(*, condition) -> ConditionCheck:
    """Validate `condition` and count its matches among the newest leads (with up to five examples)."""
    problem = condition_problem(condition)
    if problem is not None:
        return ConditionCheck(valid=False, errors=[{"location": problem.location, "message": problem.message}])
    matcher = compile_condition(condition)
    read = fields_read(condition)
    sample = recent_lead_views()
    matched = [(row, view) for row, view in sample if matcher(view)]
    examples = [
        {
            "id": row["pk"],
            "link": reverse("console:lead", args=[row["pk"]]),
            "name": " ".join(part for part in (row["first_name"], row["last_name"]) if part),
            "email": row["email"] or "",
            "company": row["company"] or "",
            "fields": {name: read_field(view, name) for name in read},
        }
        for row, view in matched[:MAX_EXAMPLES]
    ]
    return ConditionCheck(
        valid=True, text=condition_text(condition), matches=len(matched), of=len(sample), examples=examples
    )


def builder_vocabulary(*, sample: int = 200) -> dict:
    """What the builder suggests: lead fields with their input kind, the operators, attribute keys seen on the
    newest leads and on accounts, and queue names for test-case expectations. Three queries."""
    numeric = {"company_size", "engagement_score", "intent_score"}
    kinds = {
        name: "number" if name in numeric else "datetime" if name == "occurred_at" else "text" for name in LEAD_FIELDS
    }
    lead_keys: set[str] = set()
    for attributes in Lead.objects.order_by("-received_at").values_list("attributes", flat=True)[:sample]:
        if isinstance(attributes, dict):
            lead_keys.update(attributes)
    account_keys: set[str] = set()
    for attributes in Account.objects.order_by("-pk").values_list("attributes", flat=True)[:sample]:
        if isinstance(attributes, dict):
            account_keys.update(attributes)
    return {
        "fields": kinds,
        "ops": list(OPS),
        "attribute_keys": sorted(lead_keys)[:200],
        "account_fields": list(ACCOUNT_FIELDS),
        "account_keys": sorted(account_keys)[:200],
        "queues": list(Queue.objects.order_by("name").values_list("name", flat=True)),
    }
