"""Promotion gates: what a rule must have before it moves a stage, each failure with its own message.

Pure checks over a rule's contract (a draft `Rule` or a frozen `RuleVersion`, which share field names);
services.py decides when to run them and records their results with the promotion.

Test cases run only when someone asks: a draft saved, "run tests", a promotion. Their results are stored on
the rule (services.py `rule_tests_record`) and pages read them from there, so no page view evaluates a
rule; MAX_TEST_CASES and MAX_CASE_CHARS bound what one run costs."""

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from django.db import models
from django.utils import timezone
from jsonschema import Draft202012Validator

from routing.conditions import ConditionError, compile_condition, fields_read, validate_condition
from routing.governance.explain import first_failure, sample_view
from routing.intake import SampleLeadError

NO_MATCH = "no match"
MAX_TEST_CASES = 200  # per rule
MAX_CASE_CHARS = 5_000  # one test case, as compact JSON (a lead with every field at its limit is ~1,500)

TEST_CASES_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "lead", "expect"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "lead": {"type": "object"},
            "expect": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["queue"],
                        "additionalProperties": False,
                        "properties": {"queue": {"type": "string", "minLength": 1}},
                    },
                    {
                        "type": "object",
                        "required": ["match"],
                        "additionalProperties": False,
                        "properties": {"match": {"const": False}},
                    },
                ]
            },
        },
    },
}
_test_cases_validator = Draft202012Validator(TEST_CASES_SCHEMA)


def cases_problems(test_cases: Any, where: str = "test_cases") -> list[str]:
    """Shape and size errors in a test-case list, located like `test_cases[0].expect`."""
    if isinstance(test_cases, list) and len(test_cases) > MAX_TEST_CASES:
        # Said before anything else is checked: validating 30,000 cases is itself the cost being refused.
        return [f"{where}: {len(test_cases):,} test cases; a rule may have at most {MAX_TEST_CASES}"]
    problems = []
    if isinstance(test_cases, list):
        for index, case in enumerate(test_cases):
            size = len(_compact(case))
            if size > MAX_CASE_CHARS:
                problems.append(
                    f"{where}[{index}]: {size:,} characters as JSON; a test case may have at most {MAX_CASE_CHARS:,}"
                )
    for error in _test_cases_validator.iter_errors(test_cases):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        message = error.message
        if error.validator == "oneOf":
            message = 'expect is {"queue": "<queue name>"} or {"match": false}'
        problems.append(f"{where}{path}: {message}")
    return problems


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    expected: str
    got: str
    why: str = ""  # the first failing condition when the rule did not match

    def as_dict(self) -> dict:
        return asdict(self)


def cases_run(*, condition: dict, queue_name: str, test_cases: list) -> list[CaseResult]:
    """Run each sample lead through the rule alone: it matches (the outcome is its queue) or it does not."""
    holds = compile_condition(condition)
    with_account = reads_account(condition)
    results = []
    for case in test_cases:
        expected = case["expect"]["queue"] if "queue" in case["expect"] else NO_MATCH
        try:
            view = sample_view(case["lead"], with_account=with_account)
        except SampleLeadError as exc:
            results.append(CaseResult(case["name"], False, expected, "invalid sample lead", str(exc)))
            continue
        matched = holds(view)
        got = queue_name if matched else NO_MATCH
        why = "" if matched else str(first_failure(condition, view))
        results.append(CaseResult(case["name"], got == expected, expected, got, why))
    return results


def _compact(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def reads_account(condition: Any) -> bool:
    try:
        return any(field.split(".", 1)[0] == "account" for field in fields_read(condition))
    except (AttributeError, TypeError, KeyError):
        return False  # a malformed condition reads nothing (its cases cannot run)


def cases_fingerprint(*, condition: Any, queue_name: str, test_cases: Any, accounts: str = "") -> str:
    """What a run's results depend on: the condition, the rule's queue (the outcome cases expect), the
    cases, and when the condition reads account fields, the accounts (`accounts_state`) the sample leads
    matched against. Stored results whose fingerprint differs from the draft's are stale."""
    parts = [condition, queue_name, test_cases, accounts] if accounts else [condition, queue_name, test_cases]
    return hashlib.sha256(_compact(parts).encode()).hexdigest()


def cases_outcome(*, condition: Any, queue_name: str, test_cases: Any) -> list[CaseResult] | None:
    """The cases run against the condition; None when they cannot run (malformed or over the caps, or a
    condition that does not validate)."""
    if cases_problems(test_cases):
        return None
    try:
        validate_condition(condition)
    except ConditionError:
        return None
    return cases_run(condition=condition, queue_name=queue_name, test_cases=test_cases)


def cases_status(results: list[CaseResult] | None) -> str:
    """The one-word summary lists show: passing, N failing, none, or cannot run."""
    if results is None:
        return "cannot run"
    if not results:
        return "none"
    failed = sum(not r.passed for r in results)
    return "passing" if not failed else f"{failed} failing"


def results_from_json(stored: list[dict] | None) -> list[CaseResult] | None:
    return None if stored is None else [CaseResult(**item) for item in stored]


@dataclass(frozen=True)
class Gate:
    gate: str
    passed: bool
    message: str
    # Nothing to judge (nothing changed to promote, nothing staged): the promotion still does not happen, but
    # there is no fault to fix, so the gate shows neutral, not as a failure.
    not_applicable: bool = False

    @property
    def state(self) -> str:
        if self.not_applicable:
            return GateState.NOT_APPLICABLE
        return GateState.PASSED if self.passed else GateState.FAILED

    def as_dict(self) -> dict:
        shown = asdict(self)
        if not self.not_applicable:
            del shown["not_applicable"]  # stored with each promotion: the three keys it always had
        return shown


class GateState(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    NOT_APPLICABLE = "not_applicable", "Not applicable"


CONTRACT_TEXTS = (
    ("description", "Description", "Write a description: what the rule is for."),
    ("inputs", "Inputs", "List the inputs: the lead fields the rule reads."),
    ("outputs", "Outputs", "Describe the outputs: where matching leads go and what happens next."),
    ("rollback_plan", "Rollback plan", "Write a rollback plan: what to do if the rule misroutes."),
)


def inactive_owner_message(owner) -> str:
    """Why a rule whose owner was deactivated moves no stage, and how to reassign it."""
    return (
        f"The owner {owner.get_username()} is not an active account (deactivated): reassign the rule before it"
        " is promoted, forced or rolled back. An admin opens the rule's draft editor (Edit draft), picks an"
        " active owner under Owner and saves."
    )


def contract_gates(contract, *, test_gates: list[Gate] | None = None) -> list[Gate]:
    """Owner, every contract field, a valid condition and passing test cases. `contract` is a Rule (draft)
    or a RuleVersion. `test_gates`: the test-case gates already known from stored results (the rule's page
    shows those); None runs the cases now (a promotion)."""
    gates = []
    owner = contract.owner if contract.owner_id else None
    if owner is None:
        gates.append(Gate("owner", False, "Name an owner: every rule needs a person who answers for it."))
    elif not owner.is_active:
        gates.append(Gate("owner", False, inactive_owner_message(owner)))
    else:
        gates.append(Gate("owner", True, f"Owned by {owner.get_username()}."))
    for field, label, message in CONTRACT_TEXTS:
        filled = bool((getattr(contract, field) or "").strip())
        gates.append(Gate(field, filled, f"{label} written." if filled else message))
    has_sla = bool(contract.sla_minutes)
    gates.append(
        Gate(
            "sla",
            has_sla,
            f"Assign within {contract.sla_minutes} minutes." if has_sla else "Set the SLA: minutes to assignment.",
        )
    )
    try:
        validate_condition(contract.condition)
    except ConditionError as exc:
        gates.append(Gate("condition", False, f"Fix the condition: {exc}"))
        return gates  # test cases cannot run against a condition that does not compile
    gates.append(Gate("condition", True, "The condition compiles."))
    gates.extend(_test_case_gates(contract) if test_gates is None else test_gates)
    return gates


def _test_case_gates(contract) -> list[Gate]:
    cases = contract.test_cases or []
    problems = unrunnable_cases_gates(cases)
    if problems is not None:
        return problems
    return results_gates(cases_run(condition=contract.condition, queue_name=contract.queue.name, test_cases=cases))


def unrunnable_cases_gates(cases) -> list[Gate] | None:
    """The test-case gate when the cases are malformed, over the caps or missing; None when they can run."""
    problems = cases_problems(cases)
    if problems:
        return [Gate("test_cases", False, "Fix the test cases: " + "; ".join(problems))]
    if not cases:
        return [
            Gate(
                "test_cases",
                False,
                "Add at least one test case: a sample lead and the expected outcome (a queue, or no match).",
            )
        ]
    return None


def results_gates(results: list[CaseResult]) -> list[Gate]:
    gates = []
    for result in results:
        if result.passed:
            gates.append(Gate(f"test:{result.name}", True, f"Test case {result.name!r} passed ({result.got})."))
        else:
            detail = f" ({result.why})" if result.why else ""
            gates.append(
                Gate(
                    f"test:{result.name}",
                    False,
                    f"Test case {result.name!r} failed: expected {result.expected}, got {result.got}{detail}.",
                )
            )
    return gates


def failures(gates: list[Gate]) -> list[Gate]:
    return [gate for gate in gates if not gate.passed]


def rolled_back_gate(rolled_back, *, comment: str | None) -> Gate:
    """The draft repeats a version rolled back out of production (diffs.RolledBack): promoting it to staging
    again needs the promoter's reason, given as the promotion's comment, so it is a decision, not one click."""
    number, at = rolled_back.version.number, f"{timezone.localtime(rolled_back.at):%Y-%m-%d %H:%M}"
    reason = (comment or "").strip()
    if reason:
        return Gate("rolled_back", True, f"The draft repeats v{number}, rolled back on {at}; promoted again: {reason}")
    why = f" (“{rolled_back.comment}”)" if rolled_back.comment else ""
    return Gate(
        "rolled_back",
        False,
        f"The draft is v{number}, which was rolled back out of production on {at} by {rolled_back.by}{why}."
        " To promote it again, write in the comment why it is safe now.",
    )
