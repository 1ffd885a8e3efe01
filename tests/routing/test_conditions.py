"""The condition language: semantics of every op, missing/null handling, and located validation errors."""

import pytest

from routing.conditions import ConditionError, compile_condition, fields_read, validate_condition

LEAD = {
    "lifecycle_stage": "mql",
    "engagement_score": 60,
    "company_size": 51,
    "email": "jo@acme.example",
    "country": "GB",
    "company": None,
    "attributes": {"form": "support", "utm": {"source": "google"}, "tags": ["vip", "beta"], "n": 3},
}


def holds(condition, lead=LEAD):
    validate_condition(condition)
    return compile_condition(condition)(lead)


@pytest.mark.parametrize(
    ("leaf", "expected"),
    [
        ({"field": "lifecycle_stage", "op": "eq", "value": "mql"}, True),
        ({"field": "lifecycle_stage", "op": "eq", "value": "sql"}, False),
        ({"field": "lifecycle_stage", "op": "ne", "value": "sql"}, True),
        ({"field": "engagement_score", "op": "gt", "value": 50}, True),
        ({"field": "engagement_score", "op": "gt", "value": 60}, False),
        ({"field": "engagement_score", "op": "gte", "value": 60}, True),
        ({"field": "engagement_score", "op": "lt", "value": 60.5}, True),
        ({"field": "engagement_score", "op": "lte", "value": 59}, False),
        ({"field": "country", "op": "in", "value": ["GB", "IE"]}, True),
        ({"field": "country", "op": "not_in", "value": ["GB", "IE"]}, False),
        ({"field": "email", "op": "contains", "value": "@acme"}, True),
        ({"field": "attributes.tags", "op": "contains", "value": "vip"}, True),
        ({"field": "attributes.tags", "op": "contains", "value": "gold"}, False),
        ({"field": "email", "op": "startswith", "value": "jo@"}, True),
        ({"field": "email", "op": "endswith", "value": ".example"}, True),
        ({"field": "email", "op": "matches", "value": r"^[a-z]+@acme\."}, True),
        ({"field": "email", "op": "matches", "value": r"^x"}, False),
        ({"field": "email", "op": "exists"}, True),
        ({"field": "company", "op": "exists"}, False),
        ({"field": "company", "op": "missing"}, True),
        ({"field": "phone", "op": "missing"}, True),
        ({"field": "attributes.utm.source", "op": "eq", "value": "google"}, True),
        ({"field": "attributes.n", "op": "gte", "value": 3}, True),
    ],
)
def test_leaf_ops(leaf, expected):
    assert holds(leaf) is expected


@pytest.mark.parametrize("op", ["eq", "ne", "gt", "gte", "lt", "lte", "contains", "startswith", "endswith", "matches"])
@pytest.mark.parametrize("field", ["company", "phone", "attributes.absent", "attributes.utm.absent.deeper"])
def test_comparison_on_missing_or_null_is_false_and_its_not_is_true(op, field):
    value = "x" if op in ("contains", "startswith", "endswith", "matches", "eq", "ne") else 1
    leaf = {"field": field, "op": op, "value": value}
    assert holds(leaf) is False
    assert holds({"not": leaf}) is True


@pytest.mark.parametrize("op", ["in", "not_in"])
def test_membership_on_missing_is_false(op):
    assert holds({"field": "phone", "op": op, "value": ["1"]}) is False


def test_type_mismatch_is_false_not_an_error():
    assert holds({"field": "lifecycle_stage", "op": "gt", "value": 5}) is False
    assert holds({"field": "engagement_score", "op": "startswith", "value": "6"}) is False
    assert holds({"field": "attributes.utm", "op": "in", "value": ["google"]}) is False


def test_nested_all_any_not():
    condition = {
        "all": [
            {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
            {
                "any": [
                    {"field": "company_size", "op": "gt", "value": 1000},
                    {"not": {"field": "country", "op": "eq", "value": "US"}},
                ]
            },
        ]
    }
    assert holds(condition) is True
    assert holds(condition, {**LEAD, "country": "US"}) is False


def test_seed_example_mql_engaged_large_company():
    seed = {
        "all": [
            {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
            {"field": "engagement_score", "op": "gt", "value": 50},
            {"field": "company_size", "op": "gt", "value": 50},
        ]
    }
    assert holds(seed) is True
    assert holds(seed, {**LEAD, "company_size": 50}) is False
    assert holds(seed, {**LEAD, "engagement_score": None}) is False


def test_values_cannot_inject_code():
    sneaky = {"field": "email", "op": "eq", "value": "') or True or ('"}
    assert holds(sneaky) is False


def test_fields_read_lists_each_field_once_in_order():
    condition = {
        "all": [
            {"field": "email", "op": "exists"},
            {"any": [{"field": "attributes.a", "op": "eq", "value": 1}, {"field": "email", "op": "eq", "value": "x"}]},
        ]
    }
    assert fields_read(condition) == ["email", "attributes.a"]


@pytest.mark.parametrize(
    ("condition", "location", "message"),
    [
        ({"all": [{"field": "x", "op": "eq", "value": 1}]}, "when.all[0].field", "unknown field 'x'"),
        ({"all": [{}, {"field": "email", "op": "bigger", "value": 1}]}, "when.all[0]", "empty condition"),
        ({"any": [{"field": "email", "op": "bigger", "value": 1}]}, "when.any[0].op", "unknown op 'bigger'"),
        ({"any": []}, "when.any", "should be non-empty"),
        ({"field": "email", "op": "exists", "value": 1}, "when", "exists/missing take no value"),
        ({"field": "email", "op": "eq"}, "when", "'value' is a required property"),
        ({"field": "country", "op": "in", "value": "GB"}, "when.value", "is not of type 'array'"),
        ({"not": {"field": "company_size", "op": "gt", "value": [1]}}, "when.not.value", "is not of type"),
        ({"field": "email", "op": "matches", "value": "("}, "when.value", "invalid regular expression"),
        ({"field": "email", "op": "eq", "value": "x", "extra": 1}, "when", "Additional properties"),
        ([{"field": "email", "op": "exists"}], "when", "is not of type 'object'"),
    ],
)
def test_invalid_conditions_are_refused_with_their_location(condition, location, message):
    with pytest.raises(ConditionError) as caught:
        validate_condition(condition)
    assert caught.value.location == location
    assert message in caught.value.message
