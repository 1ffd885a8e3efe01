"""`matches` runs on RE2: a pattern that makes a backtracking engine run for minutes is evaluated in linear
time on every path that evaluates conditions (the engine's compiled rule set, explanations, test cases); what
RE2 cannot run, and patterns over the length cap, are refused where a condition is saved, with a location."""

import re
import subprocess
import sys
import textwrap

import pytest

from routing.conditions import (
    MAX_LEAVES,
    MAX_PATTERN_LENGTH,
    MAX_PATTERNS,
    ConditionError,
    compile_condition,
    compile_pattern,
    validate_condition,
)
from routing.governance.services import RuleDraftError, rule_draft_save
from routing.models import RuleStage
from routing.rules import RulesFileError, rules_import
from tests.conftest import ROOT, service_env
from tests.factories import QueueFactory, RuleFactory, UserFactory

CATASTROPHIC = "^(a+)+$"  # nested quantifiers: exponential backtracking on a near miss

# Runs in a fresh interpreter, so a pattern that backtracks for hours fails the test by its timeout instead
# of hanging the suite. Every path that evaluates a `matches` leaf, over a lead that nearly matches.
EVALUATE_EVERYWHERE = textwrap.dedent(
    """
    import django
    django.setup()
    from routing.conditions import compile_condition, compile_first_match
    from routing.governance.explain import first_failure
    from routing.governance.gates import cases_run

    pattern = {pattern!r}
    leaf = {{"field": "company", "op": "matches", "value": pattern}}
    condition = {{"all": [{{"field": "email", "op": "exists"}}, leaf]}}
    long_near_miss = {{"email": "a@example.com", "company": "a" * 50_000 + "!"}}
    rule_set = compile_first_match([{{"field": "country", "op": "eq", "value": "US"}}, condition])
    print("engine", rule_set(long_near_miss))
    print("condition", compile_condition(condition)(long_near_miss))
    print("explain", first_failure(condition, long_near_miss).path)
    # Test cases go through intake validation, which caps company at 200 characters; 40 is already hours
    # of backtracking for Python's re.
    case = {{"name": "near miss", "lead": {{"email": "a@example.com", "company": "a" * 40 + "!"}},
             "expect": {{"match": False}}}}
    print("cases", cases_run(condition=condition, queue_name="Sales", test_cases=[case])[0].passed)
    """
)


def test_a_catastrophic_pattern_is_evaluated_in_linear_time_by_the_engine_explanations_and_test_cases():
    script = EVALUATE_EVERYWHERE.format(pattern=CATASTROPHIC)
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=service_env(),
            capture_output=True,
            text=True,
            timeout=90,  # RE2 needs milliseconds; a backtracking engine needs longer than the universe's age
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"evaluating {CATASTROPHIC!r} over a near miss did not finish: the engine backtracks")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["engine", "-1", "condition", "False", "explain", "when.all[1]", "cases", "True"]


@pytest.mark.parametrize(
    "pattern, text",
    [
        (r"^acme", "Acme"),
        (r"^acme", "acme corp"),
        (r"(?i)^acme", "Acme"),
        (r"corp", "Acme Corp"),  # case-sensitive unless (?i)
        (r"corp", "acme corp ltd"),  # anywhere in the text, as re.search
        (r"ltd$", "acme corp ltd"),
        (r"^\d{3}-\d{4}$", "555-1234"),
        (r"^\d{3}-\d{4}$", "555-12345"),
        (r"@(gmail|yahoo)\.com$", "jo@gmail.com"),
        (r"@(gmail|yahoo)\.com$", "jo@gmail.com.evil"),
        (r"\bvp\b", "svp sales"),
        (r"\bvp\b", "vp sales"),
        (r"(?P<tld>\.io)$", "x.io"),
        (r"^a.c$", "a\nc"),  # . does not match a newline unless (?s)
        (r"(?s)^a.c$", "a\nc"),
        (r"(?m)^b$", "a\nb\nc"),
        (r"^[^@]+@[^@]+$", "plain@example.com"),
        (r"ü", "München"),
    ],
)
def test_ordinary_patterns_decide_as_python_re_search_did(pattern, text):
    holds = compile_condition({"field": "company", "op": "matches", "value": pattern})
    assert holds({"company": text}) == (re.search(pattern, text) is not None)


@pytest.mark.parametrize(
    "pattern, says",
    [
        (r"^(\w+) \1$", r"backreferences (\1) are not supported"),
        (r"(?P<word>\w+) (?P=word)", "named backreferences (?P=…) are not supported"),
        (r"^(?=.*vp)", "lookahead (?=…) is not supported"),
        (r"^(?!test)", "negative lookahead (?!…) is not supported"),
        (r"(?<=@)acme", "lookbehind (?<=…) is not supported"),
        (r"(?>a+)b", "atomic groups (?>…) are not supported"),
        (r"a++", "possessive repeats (a++, a*+) are not supported"),
        (r"acme\Z", r"\Z is not supported; write \z for the end of the text"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_with_its_location_and_what_to_do(pattern, says):
    condition = {"all": [{"field": "email", "op": "exists"}, {"field": "company", "op": "matches", "value": pattern}]}
    with pytest.raises(ConditionError) as caught:
        validate_condition(condition)
    assert caught.value.location == "when.all[1].value"
    assert caught.value.message.startswith(f"invalid regular expression: {says} (patterns run on RE2")


@pytest.mark.django_db
def test_saving_a_draft_with_a_backreference_is_refused_and_nothing_is_saved():
    rule = RuleFactory(stage=RuleStage.DRAFT)
    rule.condition = {
        "any": [
            {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
            {"field": "company", "op": "matches", "value": r"(ab)\1"},
        ]
    }
    with pytest.raises(RuleDraftError) as caught:
        rule_draft_save(rule=rule, by=rule.owner)
    assert caught.value.problems == [
        r"when.any[1].value: invalid regular expression: backreferences (\1) are not supported "
        r"(patterns run on RE2, which guarantees linear time; invalid escape sequence: \1)"
    ]
    rule.refresh_from_db()
    assert rule.condition == {"field": "lifecycle_stage", "op": "eq", "value": "mql"}


def save_in_the_editor(client, condition: str):
    """Post the console's rule editor for a draft of an admin's, with this condition text."""
    owner = UserFactory(is_superuser=True)
    rule = RuleFactory(owner=owner, stage=RuleStage.DRAFT)
    client.force_login(owner)
    form = {
        "name": rule.name,
        "owner": owner.pk,
        "priority": 5,
        "queue": rule.queue_id,
        "sla_minutes": 10,
        "condition": condition,
        "test_cases": "[]",
    }
    return client.post(f"/console/rules/{rule.pk}/edit/", form)


@pytest.mark.django_db
def test_a_pattern_over_the_length_cap_is_refused_with_its_length_and_the_limit(client):
    too_long = "a" * (MAX_PATTERN_LENGTH + 1)
    response = save_in_the_editor(client, f'{{"field": "company", "op": "matches", "value": "{too_long}"}}')
    assert response.status_code == 400
    assert f"when.value: the pattern is {MAX_PATTERN_LENGTH + 1} characters long; the limit is 500" in (
        response.content.decode()
    )
    validate_condition({"field": "company", "op": "matches", "value": "a" * MAX_PATTERN_LENGTH})  # at the cap: fine


def test_a_pattern_too_large_for_re2s_memory_budget_is_refused_with_what_to_do():
    # Legal and linear, but ~200 ms and 9 MiB to compile: a few hundred of them stalled a web worker.
    with pytest.raises(ConditionError) as caught:
        validate_condition({"field": "company", "op": "matches", "value": r"[\pL\pN]{300}"})
    assert caught.value.location == "when.value"
    assert "the pattern is too large to run (1024 KiB limit)" in caught.value.message
    validate_condition({"field": "company", "op": "matches", "value": r"[\pL\pN]{20}"})  # a modest count: fine


def test_more_distinct_patterns_than_the_limit_are_refused_before_any_is_compiled():
    compile_pattern.cache_clear()
    leaves = [{"field": "company", "op": "matches", "value": f"[\\pL\\pN]{{40}}{n}"} for n in range(MAX_PATTERNS + 1)]
    with pytest.raises(ConditionError) as caught:
        validate_condition({"any": leaves})
    assert caught.value.location == "when"
    assert caught.value.message.startswith(f"has {MAX_PATTERNS + 1} different `matches` patterns; the limit is 10")
    assert compile_pattern.cache_info().misses == 0
    validate_condition({"any": leaves[:MAX_PATTERNS] + [leaves[0]] * 50})  # the same pattern again costs nothing


def test_a_condition_with_more_leaves_than_the_limit_is_refused():
    leaf = {"field": "country", "op": "eq", "value": "US"}
    with pytest.raises(ConditionError) as caught:
        validate_condition({"all": [{"any": [leaf] * 60}, {"not": {"any": [leaf] * 41}}]})
    assert (caught.value.location, caught.value.message) == (
        "when",
        f"has 101 conditions; the limit is {MAX_LEAVES} (use `in` for lists)",
    )


@pytest.mark.django_db
def test_a_rule_editor_post_with_dozens_of_heavy_patterns_answers_400_without_compiling_them(client):
    compile_pattern.cache_clear()
    leaves = ", ".join(
        f'{{"field": "company", "op": "matches", "value": "[\\\\pL\\\\pN]{{300}}{n}"}}' for n in range(60)
    )
    response = save_in_the_editor(client, f'{{"any": [{leaves}]}}')
    assert response.status_code == 400
    assert "when: has 60 different `matches` patterns; the limit is 10" in response.content.decode()
    assert compile_pattern.cache_info().misses == 0


@pytest.mark.django_db
def test_a_rules_file_with_a_lookahead_is_refused_where_it_is():
    QueueFactory(name="AE")
    document = {
        "rules": [
            {"name": "ok", "priority": 1, "when": {"field": "email", "op": "exists"}, "then": {"queue": "AE"}},
            {
                "name": "vp",
                "priority": 2,
                "when": {
                    "all": [
                        {"field": "email", "op": "exists"},
                        {"field": "company", "op": "matches", "value": "^(?=.*vp)"},
                    ]
                },
                "then": {"queue": "AE"},
            },
        ]
    }
    with pytest.raises(RulesFileError) as caught:
        rules_import(document=document)
    assert caught.value.problems == [
        "rules[1].when.all[1].value: invalid regular expression: lookahead (?=…) is not supported "
        "(patterns run on RE2, which guarantees linear time; invalid perl operator: (?=)"
    ]
