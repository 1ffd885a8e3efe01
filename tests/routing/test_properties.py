"""Property tests (hypothesis): the condition language and intake validation over generated input.

Any condition built from the grammar validates, compiles, and decides the same as a plain recursive reading
of it; any structurally broken condition is refused with a location; intake never crashes on arbitrary JSON
and either accepts a lead or names the fields to fix."""

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.conditions import LEAD_FIELDS, ConditionError, compile_condition, read_field, validate_condition
from routing.intake import validate_lead

FIELDS = [f for f in LEAD_FIELDS if f != "occurred_at"] + ["attributes.utm.source", "attributes.plan"]
# Small domains, shared by conditions and leads, so equal and boundary values meet often.
texts = st.sampled_from(["", "a", "b", "ab", "mql", "MQL"])
scalars = st.one_of(st.integers(-2, 3), st.sampled_from([0.5, 1.0, 2.5]), texts, st.booleans())
numbers_or_text = st.one_of(st.integers(-2, 3), st.sampled_from([0.5, 1.0, 2.5]), texts)


@st.composite
def leaves(draw):
    field = draw(st.sampled_from(FIELDS))
    op = draw(
        st.sampled_from(
            [
                "eq",
                "ne",
                "gt",
                "gte",
                "lt",
                "lte",
                "in",
                "not_in",
                "contains",
                "startswith",
                "endswith",
                "exists",
                "missing",
                "matches",
            ]
        )
    )
    if op in ("exists", "missing"):
        return {"field": field, "op": op}
    if op in ("in", "not_in"):
        return {"field": field, "op": op, "value": draw(st.lists(scalars, min_size=1, max_size=4))}
    if op in ("gt", "gte", "lt", "lte"):
        return {"field": field, "op": op, "value": draw(numbers_or_text)}
    if op in ("startswith", "endswith"):
        return {"field": field, "op": op, "value": draw(st.sampled_from(["a", "b", "ab", "mq"]))}
    if op == "matches":
        return {"field": field, "op": op, "value": draw(st.sampled_from(["^a", "b$", "(?i)mql", "a|b"]))}
    return {"field": field, "op": op, "value": draw(scalars)}


conditions = st.recursive(
    leaves(),
    lambda children: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    ),
    max_leaves=8,
)

views = st.fixed_dictionaries(
    {},
    optional={
        **{f: st.one_of(st.none(), scalars, st.lists(scalars, max_size=2)) for f in LEAD_FIELDS if f != "occurred_at"},
        "attributes": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {}, optional={"plan": scalars, "utm": st.fixed_dictionaries({}, optional={"source": scalars})}
            ),
        ),
    },
)


def reference(node, view) -> bool:
    """The condition language read plainly, as the README states it."""
    if "all" in node:
        return all(reference(child, view) for child in node["all"])
    if "any" in node:
        return any(reference(child, view) for child in node["any"])
    if "not" in node:
        return not reference(node["not"], view)
    value, op = read_field(view, node["field"]), node["op"]
    if op == "exists":
        return value is not None
    if op == "missing":
        return value is None
    expected = node["value"]
    if value is None:
        return False
    number = type(value) in (int, float)
    if op in ("eq", "ne"):
        return (value == expected) if op == "eq" else (value != expected)
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(expected, int | float) and not isinstance(expected, bool):
            if not number:
                return False
        elif type(value) is not str:
            return False
        return {"gt": value > expected, "gte": value >= expected, "lt": value < expected, "lte": value <= expected}[op]
    if op in ("in", "not_in"):
        if type(value) not in (str, int, float, bool):
            return False
        return (value in expected) if op == "in" else (value not in expected)
    if op == "contains":
        if isinstance(expected, str):
            return type(value) in (str, list) and expected in value
        return type(value) is list and expected in value
    if type(value) is not str:
        return False
    if op == "startswith":
        return value.startswith(expected)
    if op == "endswith":
        return value.endswith(expected)
    return re.search(expected, value) is not None


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition=conditions, view=views)
def test_any_valid_condition_compiles_and_decides_like_the_plain_reading(condition, view):
    validate_condition(condition)
    assert compile_condition(condition)(view) == reference(condition, view)


broken = st.one_of(
    st.builds(lambda c: {"all": [c, {"field": "nope", "op": "eq", "value": 1}]}, leaves()),
    st.builds(lambda c: {"any": [c, {"field": "email", "op": "bigger", "value": 1}]}, leaves()),
    st.builds(lambda c: {"not": {"all": [c, {}]}}, leaves()),
    st.builds(lambda c: {"all": [c, {"field": "email", "op": "exists", "value": 1}]}, leaves()),
    st.builds(lambda c: {"all": [c, {"field": "email", "op": "matches", "value": "("}]}, leaves()),
)


@settings(max_examples=200, deadline=None)
@given(condition=broken)
def test_a_broken_condition_is_refused_with_where_it_is_wrong(condition):
    try:
        validate_condition(condition)
    except ConditionError as exc:
        assert exc.location.startswith("when.")
        assert "[1]" in exc.location or exc.location.startswith("when.not")
    else:
        raise AssertionError(f"accepted {condition!r}")


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"lead_id": st.one_of(st.text(max_size=140), json_values)},
        optional={
            name: json_values
            for name in (
                "email",
                "phone",
                "company_size",
                "country",
                "intent_score",
                "occurred_at",
                "attributes",
                "surprise",
            )
        },
    ),
)


@settings(max_examples=400, deadline=None)
@given(payload=payloads)
def test_intake_validation_accepts_a_lead_or_names_every_field_to_fix_and_never_crashes(payload):
    lead, errors = validate_lead(payload)
    assert (lead is None) != (errors is None)
    if errors is not None:
        assert errors and all(isinstance(messages, list) and messages for messages in errors.values())
        assert all(isinstance(name, str) for name in errors)
