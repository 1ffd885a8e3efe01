"""A rules file describes the live state exactly: export then import changes nothing, whatever stage each
rule is in, and an import that would promote is made by the person running it, through the gates."""

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditAction, AuditEvent
from routing.availability.models import TimeOff, WorkingHours
from routing.governance.models import PromotionKind, ReplayRun, RuleNotice, RulePromotion, RuleVersion
from routing.governance.services import rule_force_production, rule_rollback
from routing.management.commands.seed_demo import DEMO_RULES
from routing.models import Queue, QueueMembership, Rule, RuleStage
from routing.rules import ActorRequired, RulesFileError, rules_export, rules_import
from tests.factories import (
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    TimeOffFactory,
    UserFactory,
    WorkingHoursFactory,
    case,
    promote_live,
)
from tests.governance.helpers import edit, stage

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    user = UserFactory(username="olive", first_name="Olive", last_name="Owner")
    user.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    return user


@pytest.fixture
def root():
    return UserFactory(username="root", first_name="Root", last_name="Admin", is_superuser=True, is_staff=True)


@pytest.fixture
def inbound():
    queue = QueueFactory(name="Inbound")
    MembershipFactory(queue=queue, user=UserFactory(username="mia", first_name="Mia", last_name="Member"))
    return queue


def a_rule(owner, queue, **fields) -> Rule:
    return RuleFactory(name="MQL to Inbound", owner=owner, queue=queue, priority=10, **fields)


def draft_only(owner, root, queue):
    a_rule(owner, queue, stage=RuleStage.DRAFT, sla_minutes=None, description="")


def production_with_a_draft_edit(owner, root, queue):
    edit(a_rule(owner, queue), priority=5, description="Next week's change.")


def staged_over_production(owner, root, queue):
    stage(a_rule(owner, queue), priority=5)


def staged_over_production_with_a_draft_edit(owner, root, queue):
    edit(stage(a_rule(owner, queue), priority=5), priority=7, name="MQL to Inbound (renamed)")


def staging_only_with_a_draft_edit(owner, root, queue):
    edit(a_rule(owner, queue, stage=RuleStage.STAGING), rollback_plan="Withdraw it.")


def forced_into_production(owner, root, queue):
    rule = stage(a_rule(owner, queue), priority=5)  # the forced fix also withdraws this staging version
    edit(rule, priority=3)
    rule_force_production(rule=rule, by=root, reason="Leads were misrouted")


def rolled_back(owner, root, queue):
    rule = a_rule(owner, queue)
    promote_live(rule, priority=5)
    rule_rollback(rule=rule, by=owner)  # production is v1 again; the draft still holds v2's priority 5


def with_success_metrics_and_a_backup_owner(owner, root, queue):
    backup = UserFactory(username="bram", first_name="", last_name="")  # no name on record
    backup.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    rule = a_rule(
        owner,
        queue,
        target_exception_rate=Decimal("2.50"),
        target_latency_p95_minutes=Decimal("4.25"),
        target_overrides_per_week=3,
        target_sla_adherence=Decimal("97.10"),
        source_of_truth="Salesforce",
        backup_owner=backup,
    )
    edit(rule, target_sla_adherence=Decimal("99"), source_of_truth="HubSpot")


def with_availability(owner, root, queue):
    """Queue policies off their defaults, a member with a week, manual time off and a calendar period."""
    queue.return_policy, queue.when_everyone_away, queue.credit_back = "catch_up", "hold", False
    queue.distribution_period = "week"
    queue.save()
    mia = queue.members.get()
    WorkingHoursFactory(user=mia, timezone="Europe/Berlin", hours={"mon": [["09:00", "12:00"], ["13:00", "17:00"]]})
    TimeOffFactory(
        user=mia, start=dt.datetime(2026, 12, 24, tzinfo=dt.UTC), end=dt.datetime(2026, 12, 27, tzinfo=dt.UTC)
    )
    TimeOffFactory(
        user=mia,
        source="ical",
        ical_uid="x",
        start=dt.datetime(2027, 1, 4, tzinfo=dt.UTC),
        end=dt.datetime(2027, 1, 5, tzinfo=dt.UTC),
    )
    a_rule(owner, queue)


STATES = [
    draft_only,
    production_with_a_draft_edit,
    staged_over_production,
    staged_over_production_with_a_draft_edit,
    staging_only_with_a_draft_edit,
    forced_into_production,
    rolled_back,
    with_success_metrics_and_a_backup_owner,
    with_availability,
]


def written() -> dict:
    """Everything an import could write about rules, queues and people."""
    return {
        "rules": list(
            Rule.objects.order_by("pk").values_list(
                "name", "stage", "staging_version_id", "production_version_id", "backup_owner_id", "updated_at"
            )
        ),
        "versions": RuleVersion.objects.count(),
        "promotions": RulePromotion.objects.count(),
        "rule_history": Rule.history.count(),
        "queue_history": Queue.history.count(),
        "membership_history": QueueMembership.history.count(),
        "audit": AuditEvent.objects.exclude(action=AuditAction.RULES_IMPORTED).count(),
        "notices": RuleNotice.objects.count(),
        "working_hours_history": WorkingHours.history.count(),
        "time_off_history": TimeOff.history.count(),
    }


def test_an_import_sets_a_members_week_and_time_off_and_refuses_two_different_weeks(owner, inbound):
    document = rules_export()
    member = {
        "username": "mia",
        "timezone": "America/New_York",
        "hours": {"fri": [["10:00", "14:00"]]},
        "time_off": [{"start": "2026-12-24T00:00:00-05:00", "end": "2026-12-25T00:00:00-05:00", "note": "Eve"}],
    }
    document["queues"][0]["members"] = [member]
    document["queues"][0]["when_everyone_away"] = "hold"
    rules_import(document=json.loads(json.dumps(document)))

    mia = get_user_model().objects.get(username="mia")
    assert (mia.working_hours.timezone, mia.working_hours.hours) == ("America/New_York", {"fri": [["10:00", "14:00"]]})
    assert [(p.start, p.note) for p in mia.time_off.all()] == [(dt.datetime(2026, 12, 24, 5, tzinfo=dt.UTC), "Eve")]
    assert Queue.objects.get(name="Inbound").when_everyone_away == "hold"

    other = {"name": "Outbound", "members": [{**member, "hours": {"mon": [["08:00", "25:00"]]}}]}
    document["queues"].append(other)
    with pytest.raises(RulesFileError) as refused:
        rules_import(document=json.loads(json.dumps(document)))
    problems = refused.value.problems
    assert "queues[1].members[0].hours.mon[0]: '25:00' is not a time of day; use HH:MM from 00:00 to 24:00." in problems
    assert any("differ from queues[0].members[0]" in problem for problem in problems)


@pytest.mark.parametrize("build", STATES, ids=[state.__name__ for state in STATES])
def test_export_then_import_of_any_state_writes_nothing_and_exports_the_same(build, owner, root, inbound):
    build(owner, root, inbound)
    exported = rules_export()
    before = written()

    imported = rules_import(document=json.loads(json.dumps(exported)))  # as a file: JSON numbers, no Decimals

    assert not imported.changed
    assert written() == before
    assert rules_export() == exported
    event = AuditEvent.objects.get(action=AuditAction.RULES_IMPORTED)
    assert (event.outcome, event.actor) == ("unchanged", None)


def test_people_whose_names_split_more_than_one_way_round_trip_unchanged(owner, root, inbound):
    production_with_a_draft_edit(UserFactory(username="mas", first_name="Mary Ann", last_name="Smith"), root, inbound)
    imported = rules_import(document=rules_export())
    assert not imported.changed
    assert get_user_model().objects.get(username="mas").first_name == "Mary Ann"


def test_a_file_shows_each_stage_of_a_staged_rule_with_a_draft_edit(owner, root, inbound):
    staged_over_production_with_a_draft_edit(owner, root, inbound)
    [entry] = rules_export()["rules"]
    assert (entry["name"], entry["stage"], entry["priority"]) == ("MQL to Inbound", "production", 10)
    assert entry["staging"] == {"priority": 5}  # what staging v2 changes over production v1
    assert entry["draft"] == {"name": "MQL to Inbound (renamed)", "priority": 7}  # over staging v2


def test_a_rolled_back_rule_exports_the_version_in_production_with_the_draft_apart(owner, root, inbound):
    rolled_back(owner, root, inbound)
    [entry] = rules_export()["rules"]
    assert (entry["priority"], entry["draft"]) == (10, {"priority": 5})


def test_success_metrics_source_of_truth_and_backup_owner_are_in_the_file(owner, root, inbound):
    with_success_metrics_and_a_backup_owner(owner, root, inbound)
    document = rules_export()
    [entry] = document["rules"]
    assert entry["backup_owner"] == "bram" and "bram" in [o["username"] for o in document["owners"]]
    assert (entry["target_exception_rate"], entry["target_latency_p95_minutes"]) == (2.5, 4.25)
    assert (entry["target_overrides_per_week"], entry["target_sla_adherence"]) == (3, 97.1)
    assert entry["source_of_truth"] == "Salesforce"
    assert entry["draft"] == {"target_sla_adherence": 99, "source_of_truth": "HubSpot"}


def test_an_old_file_without_blocks_still_asks_for_its_fields_at_its_stage(owner, root, inbound):
    production_with_a_draft_edit(owner, root, inbound)
    document = rules_export()
    del document["rules"][0]["draft"], document["rules"][0]["backup_owner"]  # as files were written before
    versions = RuleVersion.objects.count()

    imported = rules_import(document=document)

    rule = Rule.objects.get()
    assert [change.said for change in imported.rules_changed] == [["save the draft (priority, description)"]]
    assert (rule.priority, rule.description, rule.version, RuleVersion.objects.count()) == (
        10,
        "Routes test leads.",
        1,
        versions,
    )


def changed_in_production(owner, inbound) -> dict:
    a_rule(owner, inbound)
    document = rules_export()
    document["rules"][0]["sla_minutes"] = 30
    return document


def test_an_import_that_promotes_without_a_person_is_refused_and_writes_nothing(owner, inbound):
    document = changed_in_production(owner, inbound)
    document["owners"].append({"username": "newcomer", "name": "New Comer"})
    before = written()
    with pytest.raises(ActorRequired) as refused:
        rules_import(document=document)
    assert refused.value.problems == [
        "rules[0] (MQL to Inbound): promote to production: v1 → a new version (sla_minutes)"
    ]
    assert written() == before
    assert not Rule.objects.filter(sla_minutes=30).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.RULES_IMPORTED).exists()
    assert not get_user_model().objects.filter(username="newcomer").exists()


def test_an_import_that_promotes_as_someone_who_does_not_own_the_rule_is_refused(owner, inbound):
    document = changed_in_production(owner, inbound)
    stranger = UserFactory(username="sam", first_name="Sam", last_name="Stranger")
    stranger.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    before = written()
    with pytest.raises(RulesFileError) as refused:
        rules_import(document=document, by=stranger)
    assert refused.value.problems == [
        "rules[0] (MQL to Inbound): sam may not make these changes (promote to production: v1 → a new version "
        "(sla_minutes)): only its owner (olive) or an admin can"
    ]
    assert written() == before


def test_a_non_owner_cannot_take_a_rule_over_by_naming_themselves_its_owner_in_the_file(owner, inbound):
    document = changed_in_production(owner, inbound)
    stranger = UserFactory(username="sam", first_name="Sam", last_name="Stranger")
    document["rules"][0]["owner"] = "sam"
    document["owners"].append({"username": "sam", "name": "Sam Stranger"})
    with pytest.raises(RulesFileError, match="only its owner"):
        rules_import(document=document, by=stranger)
    assert Rule.objects.get().owner == owner


@pytest.mark.parametrize("acting", ["owner", "root"])
def test_an_import_promotes_through_the_gates_recorded_as_the_person_running_it(acting, owner, root, inbound):
    document = changed_in_production(owner, inbound)
    person = {"owner": owner, "root": root}[acting]

    imported = rules_import(document=document, by=person)

    rule = Rule.objects.get()
    assert (rule.sla_minutes, rule.version, rule.production_version.sla_minutes) == (30, 2, 30)
    new = rule.promotions.exclude(version__number=1)
    assert sorted(new.values_list("kind", "by")) == [
        (PromotionKind.PRODUCTION, person.pk),
        (PromotionKind.STAGING, person.pk),
    ]
    assert all(gate["passed"] for gate in new.get(kind=PromotionKind.PRODUCTION).gate_results)
    event = AuditEvent.objects.get(action=AuditAction.RULES_IMPORTED)
    assert (event.outcome, event.actor, imported.counts["promoted_to_production"]) == ("imported", person, 1)
    # The owner is told when someone else promoted their rule, and not when they did it themselves.
    assert RuleNotice.objects.filter(recipient=owner).exists() == (acting == "root")


def test_an_import_still_runs_the_gates_for_the_person_running_it(owner, root, inbound):
    document = changed_in_production(owner, inbound)
    document["rules"][0]["test_cases"] = [case("an SQL", "Inbound", lifecycle_stage="sql")]  # fails
    with pytest.raises(RulesFileError) as blocked:
        rules_import(document=document, by=root)
    assert blocked.value.problems == [
        "rules[0] (MQL to Inbound): Test case 'an SQL' failed: expected Inbound, got no match "
        "(lifecycle_stage = 'mql' — lifecycle_stage was 'sql')."
    ]
    assert Rule.objects.get().version == 1


def test_a_file_with_blocks_recreates_each_stage_in_an_empty_database(root):
    document = {
        "owners": [{"username": "olive", "name": "Olive Owner", "email": "olive@example.com"}],
        "queues": [{"name": "Inbound"}],
        "rules": [
            {
                "name": "MQL to Inbound",
                "owner": "olive",
                "backup_owner": None,
                "priority": 10,
                "stage": "production",
                "when": {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
                "then": {"queue": "Inbound"},
                "sla_minutes": 15,
                "description": "Routes MQLs.",
                "inputs": "lifecycle_stage",
                "outputs": "Inbound",
                "rollback_plan": "Roll back.",
                "test_cases": [case("an MQL", "Inbound", lifecycle_stage="mql")],
                "target_exception_rate": 1.5,
                "source_of_truth": "Salesforce",
                "staging": {"sla_minutes": 10},
                "draft": {"description": "Routes MQLs faster."},
            }
        ],
    }
    imported = rules_import(document=document, by=root)

    rule = Rule.objects.get()
    assert (rule.production_version.sla_minutes, rule.staging_version.sla_minutes) == (15, 10)
    assert (rule.description, rule.sla_minutes, rule.target_exception_rate) == (
        "Routes MQLs faster.",
        10,
        Decimal("1.50"),
    )
    assert imported.counts == {
        "promoted_to_staging": 2,
        "promoted_to_production": 1,
        "drafts_saved": 1,
        "backup_owners_changed": 0,
    }
    [entry] = rules_export()["rules"]
    assert (entry["staging"], entry["draft"]) == ({"sla_minutes": 10}, {"description": "Routes MQLs faster."})
    assert rules_import(document=rules_export()).changed is False


def test_a_backup_owner_change_is_made_by_a_named_person(owner, root, inbound):
    a_rule(owner, inbound)
    UserFactory(username="bram").groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    document = rules_export()
    document["rules"][0]["backup_owner"] = "bram"
    document["owners"].append({"username": "bram", "name": "Bram Backup"})
    with pytest.raises(ActorRequired, match="backup owner none → bram"):
        rules_import(document=document)
    rules_import(document=document, by=owner)
    assert Rule.objects.get().backup_owner.username == "bram"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"target_exception_rate": 101}, "rules[0].target_exception_rate: 101 is greater than the maximum of 100"),
        ({"target_sla_adherence": 99.555}, "rules[0].target_sla_adherence: 99.555 has more than 2 decimal places"),
        ({"target_overrides_per_week": -1}, "rules[0].target_overrides_per_week: -1 is less than the minimum of 0"),
        ({"source_of_truth": "x" * 101}, "rules[0].source_of_truth: 'xxxx"),
        ({"backup_owner": "ghost"}, "rules[0].backup_owner: unknown user 'ghost'; list it under owners"),
        (
            {"draft": {"when": {"field": "nope", "op": "eq", "value": 1}}},
            "rules[0].draft.when.field: unknown field 'nope'",
        ),
        ({"staging": {"then": {"queue": "Nowhere"}}}, "rules[0].staging.then.queue: unknown queue 'Nowhere'"),
        ({"staging": {"owner": None}}, "rules[0].staging.owner: a staging version needs a named owner"),
        (
            {"stage": "staging", "staging": {"priority": 1}},
            "rules[0].staging: a staging rule has no staging block; its top-level fields are its staging version",
        ),
        (
            {"stage": "draft", "draft": {"priority": 1}},
            "rules[0].draft: a draft rule has no draft block; its top-level fields are its draft",
        ),
    ],
)
def test_each_problem_with_the_new_fields_and_blocks_is_reported_with_its_location(change, problem, owner, inbound):
    a_rule(owner, inbound)
    document = rules_export()
    document["rules"][0].update(change)
    with pytest.raises(RulesFileError) as caught:
        rules_import(document=document)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_the_command_refuses_a_promotion_without_as_and_makes_it_as_the_named_person(tmp_path, owner, inbound):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(changed_in_production(owner, inbound)))

    with pytest.raises(CommandError) as refused:
        call_command("import_rules", str(path))
    assert "Nothing was imported" in str(refused.value) and "--as USERNAME" in str(refused.value)
    assert "rules[0] (MQL to Inbound): promote to production" in str(refused.value)
    with pytest.raises(CommandError, match="--as ghost: no active user"):
        call_command("import_rules", str(path), "--as", "ghost")

    out = io.StringIO()
    call_command("import_rules", str(path), "--as", "olive", stdout=out)
    assert "rules[0] (MQL to Inbound): promote to production: v1 → a new version (sla_minutes)" in out.getvalue()
    assert Rule.objects.get().promotions.get(kind=PromotionKind.PRODUCTION, version__number=2).by == owner


def test_the_command_dry_run_says_what_would_change_and_writes_nothing(tmp_path, owner, inbound):
    document = changed_in_production(owner, inbound)
    document["queues"][0]["ack_sla_minutes"] = 5
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    before = written()

    out = io.StringIO()
    call_command("import_rules", str(path), "--dry-run", stdout=out)

    assert out.getvalue().splitlines() == [
        "Dry run, nothing written: read 2 owners, 1 queues, 1 rules.",
        "Queues would change: Inbound",
        "  rules[0] (MQL to Inbound): promote to production: v1 → a new version (sla_minutes)",
        "Refused as it stands: it promotes rules or changes a backup owner; add --as USERNAME.",
    ]
    assert written() == before
    assert Queue.objects.get().ack_sla_minutes != 5
    assert not AuditEvent.objects.filter(action=AuditAction.RULES_IMPORTED).exists()


def test_the_dry_run_says_when_the_gates_would_refuse_and_writes_nothing(tmp_path, owner, inbound):
    """The person may make the change, but the rule's own test cases fail on it: the real run is refused at
    the gates, so the dry run says so (it runs them, then rolls back)."""
    a_rule(owner, inbound)
    document = rules_export()
    document["rules"][0]["when"] = {"field": "lifecycle_stage", "op": "eq", "value": "nobody-has-this"}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    before, replays = written(), ReplayRun.objects.count()

    out = io.StringIO()
    call_command("import_rules", str(path), "--dry-run", "--as", "olive", stdout=out)

    printed = out.getvalue()
    assert "Refused as it stands:" in printed
    assert "rules[0] (MQL to Inbound):" in printed.split("Refused as it stands:")[1]
    assert written() == before
    assert ReplayRun.objects.count() == replays
    with pytest.raises(CommandError):
        call_command("import_rules", str(path), "--as", "olive", stdout=io.StringIO())
    assert written() == before


def test_the_command_says_when_nothing_changed(tmp_path, owner, inbound):
    staged_over_production(owner, None, inbound)
    path = tmp_path / "rules.json"
    call_command("export_rules", "--output", str(path))
    out = io.StringIO()
    call_command("import_rules", str(path), stdout=out)
    assert "Nothing changed: the live state is what the file says." in out.getvalue()


def test_the_demo_seeding_promotes_as_the_demo_admin_and_importing_its_file_again_changes_nothing():
    call_command("seed_demo", stdout=io.StringIO())
    assert set(RulePromotion.objects.values_list("by__username", flat=True)) == {"admin"}
    before = written()
    assert not rules_import(document=json.loads(DEMO_RULES.read_text())).changed
    assert written() == before


def test_export_reads_as_many_rows_for_ten_rules_as_for_one(owner, root, inbound, django_assert_num_queries):
    production_with_a_draft_edit(owner, root, inbound)
    with CaptureQueriesContext(connection) as one:
        rules_export()
    for n in range(9):
        stage(RuleFactory(owner=owner, queue=inbound, backup_owner=root), priority=100 + n)
    with django_assert_num_queries(len(one.captured_queries)):
        rules_export()
