"""import_rules / export_rules: one JSON document, all or nothing, round-trips."""

import datetime as dt
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from routing.governance.services import RuleDraftError, rule_draft_save
from routing.models import Queue, QueueMembership, Rule
from routing.rules import RulesFileError, rules_export, rules_import
from tests.factories import RuleFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    """Who runs the imports that promote (a file's promotions are made as the person importing it)."""
    return UserFactory(username="root", is_superuser=True, is_staff=True)


def document(**overrides):
    doc = {
        "owners": [
            {"username": "ada", "name": "Ada Lovelace", "email": "ada@example.com"},
            {"username": "alan", "name": "Alan Turing", "email": "alan@example.com"},
        ],
        "queues": [
            {
                "name": "AE",
                "members": ["alan", {"username": "ada", "weight": 2, "available": False}],
                "ack_sla_minutes": 20,
                "resolve_sla_minutes": 120,
                "strategy": "weighted_round_robin",
                "max_open_per_member": 10,
                "overflow_queue": "SDR",
                "owner": "ada",
                "escalation_contact": "alan",
                "escalation_interval_minutes": 45,
                "reassign_unacknowledged": True,
                "business_hours": {
                    "timezone": "Europe/Berlin",
                    "days": [0, 1, 2, 3, 4],
                    "start": "09:00",
                    "end": "17:30",
                },
            },
            {"name": "SDR", "members": ["ada"], "ack_sla_minutes": 30, "resolve_sla_minutes": 240},
        ],
        "rules": [
            {
                "name": "MQL to AE",
                "owner": "ada",
                "priority": 10,
                "stage": "production",
                "when": {
                    "all": [
                        {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
                        {"field": "engagement_score", "op": "gt", "value": 50},
                        {"field": "company_size", "op": "gt", "value": 50},
                    ]
                },
                "then": {"queue": "AE"},
                "sla_minutes": 15,
                "description": "Seed rule.",
                "inputs": "stage, scores",
                "outputs": "AE assignment",
                "rollback_plan": "Roll back to the previous version.",
                "test_cases": [
                    {
                        "name": "engaged MQL",
                        "lead": {
                            "email": "a@example.com",
                            "lifecycle_stage": "mql",
                            "engagement_score": 60,
                            "company_size": 80,
                        },
                        "expect": {"queue": "AE"},
                    },
                    {
                        "name": "a customer",
                        "lead": {"email": "b@example.com", "lifecycle_stage": "customer"},
                        "expect": {"match": False},
                    },
                ],
            }
        ],
    }
    doc.update(overrides)
    return doc


def test_import_creates_owners_queues_and_rules(admin):
    imported = rules_import(document=document(), by=admin)
    assert (imported.owners, imported.queues, imported.rules) == (2, 2, 1)
    assert (imported.counts["promoted_to_staging"], imported.counts["promoted_to_production"]) == (1, 1)
    ada = get_user_model().objects.get(username="ada")
    assert (ada.get_full_name(), ada.email, ada.has_usable_password()) == ("Ada Lovelace", "ada@example.com", False)
    ae = Queue.objects.get(name="AE")
    assert (ae.ack_sla_minutes, ae.resolve_sla_minutes, ae.strategy, ae.overflow_queue.name) == (
        20,
        120,
        "weighted_round_robin",
        "SDR",
    )
    assert QueueMembership.objects.get(queue=ae, user=ada).weight == 2
    assert (ae.owner, ae.escalation_contact.username, ae.escalation_interval_minutes) == (ada, "alan", 45)
    hours = ae.business_hours()
    assert (str(hours.timezone), hours.weekdays, hours.start, hours.end) == (
        "Europe/Berlin",
        frozenset(range(5)),
        dt.time(9),
        dt.time(17, 30),
    )
    rule = Rule.objects.get()
    assert (rule.owner, rule.queue, rule.priority, rule.stage, rule.version) == (ada, ae, 10, "production", 1)
    assert set(rule.promotions.values_list("by__username", flat=True)) == {"root"}  # not the owner, ada


def test_export_then_import_gives_the_same_rules(admin):
    rules_import(document=document(), by=admin)
    exported = rules_export()
    rules_import(document=json.loads(json.dumps(exported)))
    assert rules_export() == exported
    assert Rule.objects.get().version == 1  # re-importing the same rule is not a change


def test_reimport_promotes_a_changed_rule_as_a_new_version(admin):
    rules_import(document=document(), by=admin)
    changed = document()
    changed["rules"][0]["priority"] = 5
    changed["queues"][0]["members"] = ["ada"]
    rules_import(document=changed, by=admin)
    rule = Rule.objects.get()
    assert (rule.priority, rule.version) == (5, 2)
    assert [m.user.username for m in Queue.objects.get(name="AE").memberships.all()] == ["ada"]


def test_import_is_all_or_nothing_and_lists_every_problem():
    bad = document()
    bad["rules"].append(
        {
            "name": "Broken",
            "owner": "nobody",
            "priority": 20,
            "stage": "production",
            "when": {"field": "email", "op": "bigger", "value": 1},
            "then": {"queue": "Nowhere"},
        }
    )
    with pytest.raises(RulesFileError) as caught:
        rules_import(document=bad)
    assert caught.value.problems == [
        "rules[1].when.op: unknown op 'bigger'; use one of eq, ne, gt, gte, lt, lte, in, not_in, contains, "
        "startswith, endswith, matches, exists, missing",
        "rules[1].then.queue: unknown queue 'Nowhere'",
        "rules[1].owner: unknown owner 'nobody'; list it under owners",
    ]
    assert not Rule.objects.exists() and not Queue.objects.exists()


def test_a_misshapen_entry_does_not_hide_the_problems_of_the_others():
    bad = document()
    bad["rules"][0]["then"] = {"queue": "Nowhere"}
    bad["rules"].append({"name": "No condition", "priority": 30, "then": {"queue": "SDR"}})
    bad["queues"].append({"name": "Half", "strategy": "sideways"})
    bad["rules"].append(
        {"name": "To half", "priority": 40, "when": {"field": "email", "op": "exists"}, "then": {"queue": "Half"}}
    )
    with pytest.raises(RulesFileError) as caught:
        rules_import(document=bad)
    problems = caught.value.problems
    assert any(p.startswith("rules[1]") and "'when' is a required property" in p for p in problems)
    assert any(p.startswith("queues[2].strategy") for p in problems)
    assert "rules[0].then.queue: unknown queue 'Nowhere'" in problems  # found although other entries are misshapen
    assert not any("'Half'" in p for p in problems)  # a misshapen queue's name still counts as known


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"rules": [{"name": "x"}]}, "rules[0]: 'priority' is a required property"),
        ({"owners": [{"username": "a b", "name": "A"}]}, "owners[0].username: 'a b' does not match"),
        ({"queues": [{"name": "Q", "strategy": "random"}]}, "queues[0].strategy: 'random' is not one of"),
        ({"queues": [{"name": "Q", "members": ["ghost"]}]}, "queues[0].members[0]: unknown user 'ghost'"),
        ({"queues": [{"name": "Q"}, {"name": "Q"}]}, "queues[1].name: 'Q' appears twice"),
        ({"queues": [{"name": "Q", "overflow_queue": "Q"}]}, "queues[0].overflow_queue: a queue cannot overflow"),
        ({"queues": [{"name": "Q", "owner": "ghost"}]}, "queues[0].owner: unknown user 'ghost'"),
        (
            {
                "queues": [
                    {
                        "name": "Q",
                        "business_hours": {"timezone": "Mars/Olympus", "days": [0], "start": "09:00", "end": "17:00"},
                    }
                ]
            },
            "queues[0].business_hours: ",
        ),
        (
            {
                "queues": [
                    {"name": "Q", "business_hours": {"timezone": "UTC", "days": [0], "start": "17:00", "end": "09:00"}}
                ]
            },
            "queues[0].business_hours: Business hours",
        ),
        ({"surprise": 1}, "(document): Additional properties are not allowed"),
        (
            {
                "rules": [
                    {
                        "name": "r",
                        "priority": 1,
                        "stage": "production",
                        "when": {"field": "email", "op": "exists"},
                        "then": {"queue": "Q"},
                    }
                ],
                "queues": [{"name": "Q"}],
            },
            "rules[0].owner: a production rule needs a named owner",
        ),
        (
            {
                "rules": [
                    {
                        "name": "r",
                        "priority": 1,
                        "when": {"field": "email", "op": "exists"},
                        "then": {"queue": "Q"},
                        "test_cases": [{"name": "t", "lead": {}, "expect": {"queue": ""}}],
                    }
                ],
                "queues": [{"name": "Q"}],
            },
            "rules[0].test_cases[0].expect: ",
        ),
    ],
)
def test_each_kind_of_problem_is_reported_with_its_location(doc, problem):
    with pytest.raises(RulesFileError) as caught:
        rules_import(document=doc)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_import_rules_command_reports_errors_and_writes_nothing(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [{"name": "x", "priority": 1, "when": {}, "then": {"queue": "Q"}}]}))
    with pytest.raises(CommandError) as caught:
        call_command("import_rules", str(path))
    assert "Nothing was imported" in str(caught.value)
    assert "rules[0].when: empty condition" in str(caught.value)
    assert not Rule.objects.exists()


def test_import_rules_command_refuses_bad_json(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text("{not json")
    with pytest.raises(CommandError, match="is not valid UTF-8 JSON"):
        call_command("import_rules", str(path))


def test_import_rules_command_refuses_missing_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_rules", str(tmp_path / "absent.json"))


def test_export_and_import_commands_round_trip(tmp_path, admin):
    rules_import(document=document(), by=admin)
    path = tmp_path / "export.json"
    call_command("export_rules", "--output", str(path))
    rule = Rule.objects.get()
    rule.priority = 99
    rule_draft_save(rule=rule)
    out = io.StringIO()
    call_command("import_rules", str(path), stdout=out)
    assert "Imported 2 owners, 2 queues, 1 rules." in out.getvalue()
    assert rules_export() == json.loads(path.read_text())


def test_a_draft_with_an_invalid_condition_is_refused():
    rule = RuleFactory.build(condition={"field": "nope", "op": "eq", "value": 1})
    with pytest.raises(RuleDraftError, match="unknown field 'nope'"):
        rule_draft_save(rule=rule)


def test_a_file_cannot_put_an_untested_rule_into_production(admin):
    untested = document()
    del untested["rules"][0]["test_cases"]
    with pytest.raises(RulesFileError) as caught:
        rules_import(document=untested, by=admin)
    assert caught.value.problems == [
        "rules[0] (MQL to AE): Add at least one test case: a sample lead and the expected outcome "
        "(a queue, or no match)."
    ]
    assert not Rule.objects.exists()


def test_a_file_cannot_put_a_rule_with_a_failing_test_case_or_thin_contract_into_production(admin):
    failing = document()
    failing["rules"][0]["test_cases"][0]["expect"] = {"queue": "SDR"}
    failing["rules"][0]["rollback_plan"] = ""
    with pytest.raises(RulesFileError) as caught:
        rules_import(document=failing, by=admin)
    assert caught.value.problems == [
        "rules[0] (MQL to AE): Write a rollback plan: what to do if the rule misroutes.",
        "rules[0] (MQL to AE): Test case 'engaged MQL' failed: expected SDR, got AE.",
    ]


def test_an_imported_production_rule_carries_its_gates_and_replay_as_evidence(admin):
    rules_import(document=document(), by=admin)
    rule = Rule.objects.get()
    production = rule.promotions.get(kind="production")
    assert production.replay is not None and production.replay.candidate == {str(rule.pk): 1}
    assert all(gate["passed"] for gate in production.gate_results)
