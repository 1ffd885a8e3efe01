"""Rule test cases as the console edits them: what is wrong with each case, located (which case, which field),
so the editor marks the row; and a lead turned into a test case of a rule's draft ("add as a test case").

gates.cases_problems stays the check every save makes (the shape and the caps); the editor asks for more here:
an expected queue that exists, a sample lead intake accepts, names that tell cases apart."""

import json
from dataclasses import asdict, dataclass

from django.core.exceptions import PermissionDenied
from jsonschema import Draft202012Validator

from routing.conditions import LEAD_FIELDS, fields_read
from routing.governance.gates import MAX_CASE_CHARS, MAX_TEST_CASES, NO_MATCH, TEST_CASES_SCHEMA, CaseResult
from routing.governance.services import RuleDraftError, can_govern, rule_draft_save, tests_stale
from routing.intake import SampleLeadError, sample_fields
from routing.jsonbounds import JSONInputError, loads_bounded
from routing.models import Lead, Queue, Rule

NUMBER_FIELDS = ("company_size", "engagement_score", "intent_score")
# Fields a case copied from a lead leaves out (or, for the email, keeps only the domain of) unless the rule's
# condition reads them: test cases live on in the rule's versions and history, which erasure does not reach.
PERSONAL_FIELDS = ("email", "phone", "first_name", "last_name")
_validator = Draft202012Validator(TEST_CASES_SCHEMA)


@dataclass(frozen=True)
class CaseProblem:
    case: int | None  # index in the list; None: the list as a whole
    field: str  # "name", "expect", "lead.email", "lead.attributes"; "" for the whole case
    message: str

    def __str__(self) -> str:
        where = "test_cases" if self.case is None else f"test_cases[{self.case}]"
        return f"{where}{'.' + self.field if self.field else ''}: {self.message}"

    def as_dict(self) -> dict:
        return asdict(self)


def case_problems(test_cases, *, queue_names: list[str] | None = None) -> list[CaseProblem]:
    """Everything the editor refuses in `test_cases`, each located. `queue_names`: the queues an expectation may
    name (None: every queue there is, one query)."""
    if isinstance(test_cases, list) and len(test_cases) > MAX_TEST_CASES:
        return [CaseProblem(None, "", f"{len(test_cases):,} test cases; a rule may have at most {MAX_TEST_CASES}")]
    if not isinstance(test_cases, list):
        return [CaseProblem(None, "", 'a list of cases: [{"name": …, "lead": {…}, "expect": {…}}]')]
    problems = []
    for index, case in enumerate(test_cases):
        size = len(json.dumps(case, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str))
        if size > MAX_CASE_CHARS:
            problems.append(
                CaseProblem(index, "", f"{size:,} characters as JSON; a test case may have at most {MAX_CASE_CHARS:,}")
            )
    misshapen = set()
    for error in _validator.iter_errors(test_cases):
        path = list(error.absolute_path)
        index, rest = path[0], [str(part) for part in path[1:]]
        misshapen.add(index)
        field, message = ".".join(rest), error.message
        if error.validator == "required":
            field = next(name for name in error.validator_value if name not in error.instance)
            message = "missing: " + {
                "name": "give the case a name",
                "lead": "give the sample lead's fields",
                "expect": "say what it should do (a queue, or no match)",
            }.get(field, field)
        elif error.validator == "additionalProperties":
            message = "a case has only name, lead and expect: " + message
        elif error.validator == "oneOf" or rest[:1] == ["expect"]:
            field, message = "expect", 'a queue ({"queue": "<queue name>"}) or no match ({"match": false})'
        problems.append(CaseProblem(index, field, message))
    known = set(Queue.objects.values_list("name", flat=True) if queue_names is None else queue_names)
    seen: dict[str, int] = {}
    for index, case in enumerate(test_cases):
        if index in misshapen:
            continue
        if case["name"] in seen:
            problems.append(
                CaseProblem(index, "name", f"case {seen[case['name']] + 1} has this name too; give each its own")
            )
        seen.setdefault(case["name"], index)
        queue = case["expect"].get("queue")
        if queue is not None and queue not in known:
            problems.append(CaseProblem(index, "expect", f"there is no queue {queue!r}; pick a queue or no match"))
        try:
            sample_fields(case["lead"])
        except SampleLeadError as exc:
            for name, messages in exc.errors.items():
                problems.append(CaseProblem(index, "lead" if name == "lead" else f"lead.{name}", " ".join(messages)))
    return sorted(problems, key=lambda p: -1 if p.case is None else p.case)


def editor_vocabulary(rule: Rule) -> dict:
    """What the test-case forms offer: the lead fields with their input kind, attribute keys the rule's cases
    already use, the queues, and the rule's own queue (the outcome a case expects when the rule matches)."""
    keys = set()
    for case in rule.test_cases or []:
        attributes = case.get("lead", {}).get("attributes") if isinstance(case, dict) else None
        if isinstance(attributes, dict) and isinstance(case.get("lead"), dict):
            keys.update(attributes)
    return {
        "fields": {name: "number" if name in NUMBER_FIELDS else "text" for name in LEAD_FIELDS},
        "attribute_keys": sorted(keys)[:200],
        "queues": list(Queue.objects.order_by("name").values_list("name", flat=True)),
        "rule_queue": rule.queue.name if rule.queue_id else "",
    }


def case_editor_context(rule: Rule, form) -> dict:
    """The draft editor's test-case part: the forms' vocabulary, the refused cases located (after a post), and
    the stored results when the page shows the very draft they were computed for (not after a post)."""
    cases = _posted_cases(form) if form.is_bound else form.instance.test_cases
    cases = cases if isinstance(cases, list) else []
    problems = [
        {
            **problem.as_dict(),
            "number": None if problem.case is None else problem.case + 1,
            "name": _case_name(cases, problem.case),
            "text": str(problem),
        }
        for problem in getattr(form, "case_problems", [])
    ]
    results = None
    if not form.is_bound and rule.pk is not None and rule.test_results is not None and not tests_stale(rule):
        results = [CaseResult(**item) for item in rule.test_results]
    return {"case_vocabulary": editor_vocabulary(rule), "case_problems": problems, "case_results": results}


def _posted_cases(form):
    """The cases as posted (a refused field never reaches the instance), for the names the errors quote."""
    try:
        return loads_bounded(form.data.get("test_cases") or "[]")
    except JSONInputError:
        return []


def _case_name(cases: list, index: int | None) -> str:
    if index is None or index >= len(cases) or not isinstance(cases[index], dict):
        return ""
    name = cases[index].get("name")
    return name if isinstance(name, str) else ""


# ---- a lead as a test case


class CaseRefused(ValueError):
    """The case was not added; the message says why and what to do."""


def governable_rule_choices(user) -> list[Rule]:
    """The rules `user` may add a test case to (services.can_govern: their own, every rule for an admin)."""
    if not (user and user.is_authenticated):
        return []
    rules = Rule.objects.order_by("name").only("pk", "name", "owner_id")
    return list(rules if user.is_superuser else rules.filter(owner=user))


def lead_expected(lead: Lead) -> str:
    """What a case made from `lead` expects by default: the queue it is in now; the deciding rule's queue when it
    matched but nobody could take it; no match when no rule matched (an exception for no matching rule)."""
    if lead.queue_id:
        return lead.queue.name
    if lead.rule_id and lead.rule.queue_id:
        return lead.rule.queue.name
    return NO_MATCH


def lead_case_fields(lead: Lead, *, reads: set[str]) -> dict:
    """The lead's routing fields, empty ones left out. `reads`: the fields the rule's condition reads; the
    person's name and phone are left out unless it reads them, and the email keeps only its domain (rules often
    read it: endswith "@acme.com"), since a test case is not erased with the person's leads."""
    fields = {}
    for name, value in lead.routing_view().items():
        if value in (None, "", {}):
            continue
        if name in PERSONAL_FIELDS and name not in reads:
            if name != "email" or "@" not in value:
                continue
            value = f"lead-{lead.pk}@{value.rsplit('@', 1)[1]}"
        fields[name] = value
    return fields


def lead_case_add(*, rule: Rule, lead: Lead, name: str, expect: str, by) -> CaseResult | None:
    """Append `lead` as a test case to `rule`'s draft (saved as any draft save: audited, the cases run again).
    Returns the new case's result (None when the cases cannot run, e.g. the condition is empty)."""
    if not can_govern(by, rule):
        owner = rule.owner.get_username() if rule.owner_id else "nobody yet"
        raise PermissionDenied(f"Only the rule's owner ({owner}) or an admin adds test cases to {rule.name!r}.")
    name = (name or "").strip()
    if not name:
        raise CaseRefused("Give the test case a name.")
    cases = list(rule.test_cases or []) if isinstance(rule.test_cases, list) else []
    if any(isinstance(case, dict) and case.get("name") == name for case in cases):
        raise CaseRefused(f"{rule.name!r} already has a test case named {name!r}; give this one another name.")
    try:
        reads = {field.split(".", 1)[0] for field in fields_read(rule.condition)}
    except (AttributeError, TypeError, KeyError):
        reads = set()
    case = {
        "name": name,
        "lead": lead_case_fields(lead, reads=reads),
        "expect": {"match": False} if expect == NO_MATCH else {"queue": expect},
    }
    problems = case_problems([case])
    if problems:
        raise CaseRefused("The case was not added: " + "; ".join(f"{p.field or 'case'}: {p.message}" for p in problems))
    rule.test_cases = [*cases, case]
    try:
        rule_draft_save(rule=rule, by=by)
    except RuleDraftError as exc:
        raise CaseRefused(
            f"The draft of {rule.name!r} cannot be saved as it is, so the case was not added: {exc}"
        ) from None
    results = [CaseResult(**item) for item in rule.test_results] if rule.test_results is not None else None
    return results[-1] if results else None
