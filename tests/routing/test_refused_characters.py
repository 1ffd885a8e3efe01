"""Finding 11 (docs/security.md): control characters (CR, LF, tab, other C0 and C1) and bidirectional
embeddings, overrides and isolates are refused in a lead's id and names and in queue, rule, source and
account names, with a 400 (or a located problem) naming the field; ordinary accented and right-to-left text
is accepted."""

import json

import pytest
from rest_framework.test import APIClient

from routing.governance.services import RuleDraftError, rule_draft_save
from routing.models import Lead, Queue, Source
from routing.rules import RulesFileError, rules_import
from routing.sources import source_create
from routing.text import refused_character
from tests.factories import QueueFactory, RuleFactory, UserFactory, personal_token

pytestmark = pytest.mark.django_db

REFUSED = {
    "line feed": "form-1\nX-Injected: yes",
    "carriage return": "form-1\rX",
    "tab": "form\t1",
    "escape (C0)": "form-\x1b[31m1",
    "next line (C1)": "form-\x851",
    "right-to-left override": "invoice\u202egpj.exe",
    "left-to-right embedding": "a\u202ab",
    "first strong isolate": "a\u2068b",
    "pop directional isolate": "a\u2069b",
    "line separator": "form-1\u2028X",
    "paragraph separator": "form-1\u2029X",
    "zero-width space": "Support questions\u200b",
    "right-to-left mark": "evil\u200fname",
    "arabic letter mark": "evil\u061cname",
    "byte order mark": "\ufeffform-1",
    "word joiner": "form\u20601",
    "mongolian vowel separator": "form\u180e1",
    "combining grapheme joiner": "form\u034f1",
    "tag letter": "form-1\U000e0041",
    "zero-width joiner beside latin": "form-1\u200d",
    "zero-width non-joiner at the start": "\u200cform-1",
}
# Joiners inside Persian text and an emoji sequence are part of the text, not a disguise.
ACCEPTED = [
    "form-123",
    "Zoë Ünal",
    "شركة الأمل",
    "חברה",
    "株式会社",
    "می\u200cخواهم",
    "Team \U0001f469\u200d\U0001f4bb",
]


def post_lead(client, payload):
    return client.post("/api/v1/leads/", json.dumps(payload), content_type="application/json")


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
def test_intake_refuses_control_and_bidi_characters_in_lead_id(source_client, value):
    answer = post_lead(source_client, {"lead_id": value, "email": "jo@acme.example"})

    assert answer.status_code == 400
    (message,) = answer.json()["lead_id"]
    assert message.startswith("Must not contain control characters") and "U+" in message
    assert not Lead.objects.exists()


@pytest.mark.parametrize("field", ["first_name", "last_name", "company"])
def test_intake_refuses_a_right_to_left_override_in_names_naming_the_field(source_client, field):
    answer = post_lead(source_client, {"lead_id": "form-1", field: "Acme\u202e Corp"})

    assert answer.status_code == 400
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in answer.json()[field][0]


def test_a_batch_reports_the_refused_lead_and_stores_the_others(source_client):
    answer = source_client.post(
        "/api/v1/leads/batch/",
        json.dumps([{"lead_id": "ok-1"}, {"lead_id": "bad\r\n2"}]),
        content_type="application/json",
    )

    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "invalid"]
    assert "U+000D (CARRIAGE RETURN)" in results[1]["errors"]["lead_id"][0]
    assert list(Lead.objects.values_list("lead_id", flat=True)) == ["ok-1"]


@pytest.mark.parametrize("value", ACCEPTED)
def test_intake_accepts_accented_and_right_to_left_text(source_client, value):
    answer = post_lead(source_client, {"lead_id": value, "company": value, "first_name": value})

    assert answer.status_code == 202, answer.json()


def test_refused_character_names_the_character_and_where_it_is():
    assert refused_character("ab\u202ecd") == (
        "Must not contain control characters (line breaks, tabs …), invisible characters or bidirectional overrides: "
        "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 3."
    )
    assert all(refused_character(value) is None for value in ACCEPTED)


def test_a_rule_name_with_a_line_break_is_not_saved(rule_owner):
    rule = RuleFactory(owner=rule_owner)
    rule.name = "Sales\nForged line"

    with pytest.raises(RuleDraftError, match=r"name: Must not contain control characters.*U\+000A \(LINE FEED\)"):
        rule_draft_save(rule=rule, by=rule_owner)


def test_the_console_editor_refuses_a_bidi_override_in_a_rule_name(client, rule_owner):
    rule = RuleFactory(owner=rule_owner)
    client.force_login(rule_owner)
    form = {
        "name": "Sales\u202eevil",
        "owner": rule_owner.pk,
        "priority": 5,
        "queue": rule.queue_id,
        "sla_minutes": 10,
        "condition": '{"field": "email", "op": "exists"}',
        "test_cases": "[]",
    }

    answer = client.post(f"/console/rules/{rule.pk}/edit/", form)

    assert answer.status_code == 400
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in answer.content.decode()


def test_the_rules_file_refuses_control_characters_in_owner_queue_and_rule_names():
    document = {
        "owners": [{"username": "ada", "name": "Ada\tLovelace"}],
        "queues": [{"name": "Sales\u2066", "members": ["ada"]}],
        "rules": [
            {
                "name": "All\r\nto Sales",
                "owner": "ada",
                "priority": 1,
                "when": {"field": "email", "op": "exists"},
                "then": {"queue": "Sales\u2066"},
            }
        ],
    }

    with pytest.raises(RulesFileError) as refused:
        rules_import(document=document)

    problems = "\n".join(refused.value.problems)
    assert "owners[0].name: Must not contain control characters" in problems
    assert "queues[0].name: Must not contain control characters" in problems
    assert "rules[0].name: Must not contain control characters" in problems
    assert not Queue.objects.filter(name__startswith="Sales").exists()


def test_a_source_name_with_a_line_break_is_refused():
    with pytest.raises(ValueError, match="name: Must not contain control characters"):
        source_create(name="web\nform")
    assert not Source.objects.exists()


def test_the_accounts_api_refuses_a_bidi_override_in_an_account_name(ops_person):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {personal_token(ops_person)}")

    answer = client.put("/api/v1/accounts/A-1/", {"name": "Acme\u202eCorp"}, format="json")

    assert answer.status_code == 400
    assert "U+202E" in answer.json()["name"][0]


def test_the_admin_refuses_a_line_break_in_a_queue_name(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    queue = QueueFactory(name="Sales")

    answer = client.post(
        f"/admin/routing/queue/{queue.pk}/change/",
        {"name": "Sales\nForged", "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0},
    )

    assert answer.status_code == 200
    assert "U+000A (LINE FEED)" in answer.content.decode()
    queue.refresh_from_db()
    assert queue.name == "Sales"
