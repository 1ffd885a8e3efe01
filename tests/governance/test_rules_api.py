"""The rules API: read, test, promote (400 with every gate failure, 403 for non-owners), roll back, replay
(as a Celery task on a real worker), preview, and manual assignment recorded as an override."""

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import Override
from routing.governance.models import ReplayRun, RulePromotion
from routing.governance.replay import REPLAY_STALE_AFTER, REPLAYS_AT_ONCE, replay_execute, replay_request
from routing.models import Lead
from routing.services import lead_route
from tests.conftest import wait_until
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory, UserFactory, case

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def owner_api(rule_owner):
    return client_for(rule_owner)


@pytest.fixture
def other_owner():
    user = UserFactory(username="petra")
    user.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    return user


@pytest.fixture
def draft(rule_owner):
    queue = QueueFactory(name="AE")
    return RuleFactory(
        name="Enterprise",
        owner=rule_owner,
        stage="draft",
        queue=queue,
        test_cases=[case("MQL", "AE", lifecycle_stage="mql")],
    )


def test_rules_list_shows_stage_owner_sla_versions_overrides_and_test_status(owner_api, rule_owner):
    live = RuleFactory(name="Live", owner=rule_owner)
    RuleFactory(name="Draft", owner=rule_owner, stage="draft", test_cases=[])
    body = owner_api.get("/api/v1/rules/").json()
    rows = {row["name"]: row for row in body}
    assert rows["Live"]["tests_run_at"] is not None
    assert rows["Live"] | {"id": None, "tests_run_at": None} == {
        "id": None,
        "tests_run_at": None,
        "tests_stale": False,
        "name": "Live",
        "stage": "production",
        "owner": "rowan",
        "owner_active": True,
        "backup_owner": None,
        "priority": live.priority,
        "queue": live.queue.name,
        "assignee": "",
        "sla_minutes": 15,
        "production_version": 1,
        "staging_version": None,
        "test_status": "passing",
        "overrides_this_week": 0,
        "flagged": False,
        "signed_this_week": False,
        "changed_since_sign_off": [],
        "last_sign_off": None,
    }
    assert (rows["Draft"]["stage"], rows["Draft"]["test_status"], rows["Draft"]["production_version"]) == (
        "draft",
        "none",
        None,
    )


def test_rule_detail_has_the_contract_readable_condition_and_versions(owner_api, rule_owner):
    rule = RuleFactory(owner=rule_owner, condition={"all": [{"field": "country", "op": "in", "value": ["US", "CA"]}]})
    body = owner_api.get(f"/api/v1/rules/{rule.pk}/").json()
    assert body["condition_text"] == "country in ['US', 'CA']"
    assert [v["number"] for v in body["versions"]] == [1]
    assert body["rollback_plan"] == "Roll back to the previous version."
    assert owner_api.get("/api/v1/rules/999999/").status_code == 404


def test_running_test_cases_reports_each_case_with_why_it_failed(owner_api, draft):
    response = owner_api.post(
        f"/api/v1/rules/{draft.pk}/test/",
        {"test_cases": [case("MQL", "AE", lifecycle_stage="mql"), case("SQL", "AE", lifecycle_stage="sql")]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json() == [
        {"name": "MQL", "passed": True, "expected": "AE", "got": "AE", "why": ""},
        {
            "name": "SQL",
            "passed": False,
            "expected": "AE",
            "got": "no match",
            "why": "lifecycle_stage = 'mql' — lifecycle_stage was 'sql'",
        },
    ]
    bad = owner_api.post(f"/api/v1/rules/{draft.pk}/test/", {"test_cases": [{"name": "x"}]}, format="json")
    assert bad.status_code == 400
    assert "test_cases[0]: 'lead' is a required property" in bad.json()["test_cases"]


def test_promote_blocked_is_400_with_every_failed_gate(owner_api, draft):
    draft.rollback_plan, draft.test_cases = "", []
    draft.save()
    response = owner_api.post(f"/api/v1/rules/{draft.pk}/promote/", {"to": "staging"}, format="json")
    assert response.status_code == 400
    failures = {f["gate"]: f["message"] for f in response.json()["failures"]}
    assert failures == {
        "rollback_plan": "Write a rollback plan: what to do if the rule misroutes.",
        "test_cases": "Add at least one test case: a sample lead and the expected outcome (a queue, or no match).",
    }
    assert not RulePromotion.objects.filter(rule=draft).exists()


def test_promote_to_production_needs_a_replay_then_succeeds(owner_api, draft):
    staged = owner_api.post(f"/api/v1/rules/{draft.pk}/promote/", {"to": "staging"}, format="json")
    assert (staged.status_code, staged.json()["version"], staged.json()["kind"]) == (200, 1, "staging")
    blocked = owner_api.post(f"/api/v1/rules/{draft.pk}/promote/", {"to": "production"}, format="json")
    assert blocked.status_code == 400
    assert [f["gate"] for f in blocked.json()["failures"]] == ["replay"]
    run = replay_execute(run_id=replay_request(by=draft.owner).pk)
    promoted = owner_api.post(f"/api/v1/rules/{draft.pk}/promote/", {"to": "production"}, format="json")
    assert (promoted.status_code, promoted.json()["replay"], promoted.json()["kind"]) == (200, run.pk, "production")


def test_promote_to_a_backward_stage_is_refused_by_validation(owner_api, draft):
    response = owner_api.post(f"/api/v1/rules/{draft.pk}/promote/", {"to": "draft"}, format="json")
    assert response.status_code == 400
    assert "to" in response.json()


def test_only_the_owner_or_an_admin_promotes_or_rolls_back(draft, other_owner, rule_owner):
    other = client_for(other_owner)
    response = other.post(f"/api/v1/rules/{draft.pk}/promote/", {"to": "staging"}, format="json")
    assert response.status_code == 403
    assert "Only the rule's owner (rowan) or an admin can promote 'Enterprise'" in response.json()["detail"]
    assert other.post(f"/api/v1/rules/{draft.pk}/rollback/").status_code == 403
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    assert (
        client_for(admin).post(f"/api/v1/rules/{draft.pk}/promote/", {"to": "staging"}, format="json").status_code
        == 200
    )


def test_rollback_without_an_earlier_version_is_400(owner_api, rule_owner):
    rule = RuleFactory(owner=rule_owner)
    response = owner_api.post(f"/api/v1/rules/{rule.pk}/rollback/")
    assert response.status_code == 400
    assert "no earlier production version" in response.json()["detail"]


def test_outsiders_and_capture_sources_cannot_use_the_rules_api(outsider, source_client, draft):
    assert client_for(outsider).get("/api/v1/rules/").status_code == 403
    assert source_client.get("/api/v1/rules/").status_code == 403
    assert APIClient().get("/api/v1/rules/").status_code == 401


def test_preview_names_the_deciding_rule_the_assignee_and_why_earlier_rules_missed(owner_api, rule_owner):
    ae, sdr = QueueFactory(name="AE"), QueueFactory(name="SDR")
    MembershipFactory(queue=sdr, user__username="sam")
    RuleFactory(
        name="Big",
        owner=rule_owner,
        priority=1,
        queue=ae,
        condition={"field": "company_size", "op": "gte", "value": 500},
    )
    RuleFactory(name="Rest", owner=rule_owner, priority=2, queue=sdr, condition={"field": "email", "op": "exists"})
    response = owner_api.post(
        "/api/v1/rules/preview/", {"lead": {"email": "a@b.co", "company_size": 40}}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["rule"]["name"], body["queue"], body["assignee"]) == ("Rest", "SDR", "sam")
    assert body["not_matched"][0]["failed"] == {
        "at": "when",
        "condition": "company_size ≥ 500",
        "saw": {"company_size": 40},
    }
    bad = owner_api.post("/api/v1/rules/preview/", {"lead": {"email": "nope"}}, format="json")
    assert bad.status_code == 400 and bad.json()["lead"] == {"email": ["Enter a valid email address."]}


def test_manual_assignment_through_the_api_records_an_override_against_the_deciding_rule(ops_person, rule_owner):
    ae, sdr = QueueFactory(name="AE"), QueueFactory(name="SDR")
    MembershipFactory(queue=ae, user__username="alan")
    MembershipFactory(queue=sdr, user__username="sam")
    rule = RuleFactory(owner=rule_owner, queue=ae)
    lead = LeadFactory()
    lead_route(lead_id=lead.pk)
    response = client_for(ops_person).post(
        f"/api/v1/leads/{lead.pk}/assign/", {"queue": sdr.pk, "assignee": "sam", "reason": "Territory"}, format="json"
    )
    assert response.status_code == 200
    override = Override.objects.get()
    assert (
        override.rule,
        override.rule_version,
        override.from_queue,
        override.to_queue,
        override.to_assignee.username,
    ) == (
        rule,
        1,
        ae,
        sdr,
        "sam",
    )
    assert Lead.objects.get(pk=lead.pk).assignee.username == "sam"
    refused = client_for(ops_person).post(
        f"/api/v1/leads/{lead.pk}/assign/", {"queue": sdr.pk, "reason": " "}, format="json"
    )
    assert refused.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_replay_runs_as_a_celery_task_on_a_real_worker(celery_worker, rule_owner):
    ae, sdr = QueueFactory(name="AE"), QueueFactory(name="SDR")
    MembershipFactory(queue=ae)
    MembershipFactory(queue=sdr)
    rule = RuleFactory(owner=rule_owner, queue=ae)
    for _ in range(5):
        lead = LeadFactory()
        lead_route(lead_id=lead.pk)
    rule.queue = sdr
    rule.test_cases = [case("MQL", "SDR", lifecycle_stage="mql")]
    rule.save()
    client_for(rule_owner).post(f"/api/v1/rules/{rule.pk}/promote/", {"to": "staging"}, format="json")
    response = client_for(rule_owner).post("/api/v1/rules/replay/", {"limit": 100}, format="json")
    assert response.status_code == 202
    run_id = response.json()["id"]
    wait_until(lambda: ReplayRun.objects.get(pk=run_id).status == "done", what="the replay task to finish")
    body = client_for(rule_owner).get(f"/api/v1/rules/replay/{run_id}/").json()
    assert (body["total"], body["result"]["moved_count"]) == (5, 5)
    assert (body["result"]["before"], body["result"]["after"]) == ({"AE": 5}, {"SDR": 5})


def test_a_second_replay_while_ones_own_is_unfinished_is_refused_with_429(rule_owner):
    client = client_for(rule_owner)
    first = client.post("/api/v1/rules/replay/", {"limit": 100}, format="json")
    assert first.status_code == 202  # queued: no worker runs in this test
    again = client.post("/api/v1/rules/replay/", {"limit": 100}, format="json")
    assert (again.status_code, again["Retry-After"]) == (429, "30")
    assert again.json()["detail"] == (
        f"Your replay #{first.json()['id']} is still queued; start another once it has finished."
    )
    assert ReplayRun.objects.count() == 1


def test_replays_at_once_are_capped_and_a_lost_run_holds_nobody_back(rule_owner):
    owners = [rule_owner, *UserFactory.create_batch(REPLAYS_AT_ONCE)]
    for owner in owners:
        owner.groups.add(Group.objects.get(name="rule_owners"))
    for owner in owners[:REPLAYS_AT_ONCE]:
        assert client_for(owner).post("/api/v1/rules/replay/", {"limit": 10}, format="json").status_code == 202
    refused = client_for(owners[-1]).post("/api/v1/rules/replay/", {"limit": 10}, format="json")
    assert refused.status_code == 429
    assert refused.json()["detail"] == (
        f"{REPLAYS_AT_ONCE} replays are still queued or running; start yours once one of them has finished."
    )
    # A run requested longer ago than REPLAY_STALE_AFTER is taken for lost (its worker died).
    ReplayRun.objects.filter(requested_by=owners[0]).update(requested_at=timezone.now() - REPLAY_STALE_AFTER)
    assert client_for(owners[-1]).post("/api/v1/rules/replay/", {"limit": 10}, format="json").status_code == 202
