"""Issue 7, bad input: huge and deeply nested `attributes` are refused with a 400 naming the field, and
nothing is stored; JSON nested far deeper than any parser stack allows is a 400, never a crash."""

import json

import pytest

from routing.jsonbounds import MAX_ATTRIBUTE_DEPTH, MAX_ATTRIBUTE_KEYS
from routing.models import Lead
from tests.factories import LeadPayloadFactory

pytestmark = pytest.mark.django_db
INTAKE = "/api/v1/leads/"
BATCH = "/api/v1/leads/batch/"


def post_json(client, url, payload):
    return client.post(url, data=json.dumps(payload), content_type="application/json")


def nested(depth: int, leaf=1) -> dict:
    """An attributes object `depth` levels deep: {"k": {"k": … leaf}}."""
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def many_keys(n: int) -> dict:
    return {f"key{i}": i for i in range(n)}


def test_attributes_with_the_most_keys_allowed_are_accepted(source_client):
    response = post_json(source_client, INTAKE, LeadPayloadFactory(attributes=many_keys(MAX_ATTRIBUTE_KEYS)))
    assert response.status_code == 202
    assert len(Lead.objects.get().attributes) == MAX_ATTRIBUTE_KEYS


def test_attributes_with_one_key_too_many_are_refused(source_client):
    response = post_json(source_client, INTAKE, LeadPayloadFactory(attributes=many_keys(MAX_ATTRIBUTE_KEYS + 1)))
    assert response.status_code == 400
    assert response.json() == {"attributes": [f"More than {MAX_ATTRIBUTE_KEYS} keys in one object."]}
    assert not Lead.objects.exists()


def test_too_many_keys_deeper_down_are_refused_too(source_client):
    attributes = {"utm": {"tags": many_keys(MAX_ATTRIBUTE_KEYS + 1)}}
    response = post_json(source_client, INTAKE, LeadPayloadFactory(attributes=attributes))
    assert response.status_code == 400
    assert response.json() == {"attributes": [f"More than {MAX_ATTRIBUTE_KEYS} keys in one object."]}


def test_attributes_at_the_deepest_level_allowed_are_accepted(source_client):
    response = post_json(source_client, INTAKE, LeadPayloadFactory(attributes=nested(MAX_ATTRIBUTE_DEPTH)))
    assert response.status_code == 202


def test_lists_count_as_levels_of_nesting(source_client):
    attributes = {"a": [{"b": [{"c": 1}]}]}  # object, list, object, list, object: 5 levels
    assert post_json(source_client, INTAKE, LeadPayloadFactory(attributes=attributes)).status_code == 202
    deeper = {"a": [{"b": [{"c": [1]}]}]}  # 6 levels
    response = post_json(source_client, INTAKE, LeadPayloadFactory(attributes=deeper))
    assert response.status_code == 400
    assert response.json() == {"attributes": [f"Nested deeper than {MAX_ATTRIBUTE_DEPTH} levels; flatten it."]}


def test_json_nested_thousands_of_levels_deep_is_a_400_not_a_crash(source_client):
    depth = 20_000  # 40 KB of brackets: under the 64 KiB body limit, far past any parser's nesting limit
    body = '{"lead_id": "deep", "attributes": {"k": ' + "[" * depth + "]" * depth + "}}"
    assert len(body) < 64 * 1024
    response = source_client.post(INTAKE, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed JSON")
    assert not Lead.objects.exists()


def test_a_batch_refuses_only_the_items_with_oversized_attributes(source_client):
    payloads = [
        LeadPayloadFactory(lead_id="ok"),
        LeadPayloadFactory(lead_id="wide", attributes=many_keys(MAX_ATTRIBUTE_KEYS + 1)),
        LeadPayloadFactory(lead_id="deep", attributes=nested(MAX_ATTRIBUTE_DEPTH + 1)),
    ]
    response = post_json(source_client, BATCH, payloads)
    assert response.status_code == 200
    assert [(r["lead_id"], r["status"]) for r in response.json()["results"]] == [
        ("ok", "accepted"),
        ("wide", "invalid"),
        ("deep", "invalid"),
    ]
    assert list(Lead.objects.values_list("lead_id", flat=True)) == ["ok"]
