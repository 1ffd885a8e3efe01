"""The experiments API: each operation's success and each refusal's status and message."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from routing.experiments.models import Arm, Experiment, ExperimentStatus
from tests.factories import ExperimentFactory, ExperimentLeadFactory, RuleFactory, SourceFactory, UserFactory
from tests.governance.helpers import replay

pytestmark = pytest.mark.django_db

BODY = {"percent": 50, "max_leads": 1000, "criteria": {"route_latency": -50, "manual_touches": -70}}


def client_for(user) -> APIClient:
    client = APIClient()
    client.default_format = "json"
    client.force_authenticate(user)
    return client


@pytest.fixture
def owner_api(rule_owner):
    return client_for(rule_owner)


def test_the_owner_starts_one_and_reads_it_back(owner_api, mql_rule):
    ends_at = (timezone.now() + dt.timedelta(days=7)).replace(microsecond=0)
    started = owner_api.post(
        f"/api/v1/rules/{mql_rule.pk}/experiments/", {**BODY, "ends_at": ends_at.isoformat()}, format="json"
    )
    assert started.status_code == 201, started.json()
    body = started.json()
    assert (body["status"], body["rule"], body["candidate_version"], body["baseline_version"]) == (
        "running",
        mql_rule.pk,
        2,
        1,
    )
    assert (body["percent"], body["max_leads"], body["enrolled"]) == (50, 1000, 0)
    assert body["criteria"] == {"route_latency": -50, "manual_touches": -70}
    assert [arm["name"] for arm in body["arms"]] == ["production", "candidate"]

    ExperimentLeadFactory(experiment=Experiment.objects.get(pk=body["id"]), arm=Arm.CANDIDATE)
    read = owner_api.get(f"/api/v1/experiments/{body['id']}/").json()
    candidate = read["arms"][1]
    assert {key: candidate[key] for key in ("leads", "route_latency_p50_ms", "exceptions", "converted")} == {
        "leads": 1,
        "route_latency_p50_ms": 1000.0,
        "exceptions": 0,
        "converted": 0,
    }
    assert candidate["manual_touches"] == 0 and candidate["exception_ci"][0] == 0.0
    assert [v["verdict"] for v in read["verdicts"]] == ["too early to tell", "too early to tell"]


def test_a_bad_setting_is_a_400_naming_its_field(owner_api, mql_rule):
    for body, field in (
        ({**BODY, "percent": 100}, "percent"),
        ({**BODY, "criteria": {"latency": -50}}, "criteria"),
        ({"percent": 50}, "max_leads"),
        ({**BODY, "ends_at": "2001-01-01T00:00:00Z"}, "ends_at"),
    ):
        refused = owner_api.post(f"/api/v1/rules/{mql_rule.pk}/experiments/", body)
        assert refused.status_code == 400 and list(refused.json()) == [field], refused.json()
    unknown = owner_api.post(f"/api/v1/rules/{mql_rule.pk}/experiments/", {**BODY, "criteria": {"latency": -5}})
    assert "'latency' is not a criterion" in unknown.json()["criteria"][0]


def test_a_rule_with_nothing_staged_is_a_400(owner_api, rule_owner, sales):
    rule = RuleFactory(owner=rule_owner, queue=sales)
    refused = owner_api.post(f"/api/v1/rules/{rule.pk}/experiments/", BODY)
    assert refused.status_code == 400 and "no staging version" in refused.json()["rule"][0]


def test_only_the_owner_or_an_admin_acts_others_read(mql_rule, ops_person, admin):
    ops = client_for(ops_person)
    refused = ops.post(f"/api/v1/rules/{mql_rule.pk}/experiments/", BODY)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only the rule's owner (rowan) or an admin can start an experiment on 'MQLs'."
    experiment = ExperimentFactory(rule=mql_rule)
    assert ops.get(f"/api/v1/experiments/{experiment.pk}/").status_code == 200
    assert ops.post(f"/api/v1/experiments/{experiment.pk}/stop/").status_code == 403
    assert ops.post(f"/api/v1/experiments/{experiment.pk}/decide/", {"decision": "keep"}).status_code == 403
    assert client_for(admin).post(f"/api/v1/experiments/{experiment.pk}/stop/").status_code == 200


def test_a_capture_source_and_strangers_are_refused(mql_rule):
    source = APIClient()
    source.credentials(HTTP_AUTHORIZATION=f"Token {SourceFactory().token}")
    assert source.get("/api/v1/experiments/").status_code == 403
    assert client_for(UserFactory()).get("/api/v1/experiments/").status_code == 403
    assert APIClient().get("/api/v1/experiments/").status_code == 401


def test_missing_objects_are_404(owner_api):
    assert owner_api.post("/api/v1/rules/999999/experiments/", BODY).status_code == 404
    assert owner_api.get("/api/v1/experiments/999999/").status_code == 404
    assert owner_api.post("/api/v1/experiments/999999/stop/").status_code == 404
    assert owner_api.post("/api/v1/experiments/999999/decide/", {"decision": "keep"}).status_code == 404


def test_a_second_experiment_is_a_409_naming_the_running_one(owner_api, mql_rule, rule_owner, uk):
    running = ExperimentFactory(rule=mql_rule)
    from tests.governance.helpers import stage

    other = stage(RuleFactory(owner=rule_owner, queue=uk, priority=40), priority=41)
    refused = owner_api.post(f"/api/v1/rules/{other.pk}/experiments/", BODY)
    assert refused.status_code == 409
    assert refused.json()["experiment"] == running.pk
    assert f"Experiment #{running.pk} on 'MQLs' (rule {mql_rule.pk}) is running" in refused.json()["detail"]


def test_stop_then_stop_again_is_a_409(owner_api, mql_rule):
    experiment = ExperimentFactory(rule=mql_rule)
    stopped = owner_api.post(f"/api/v1/experiments/{experiment.pk}/stop/")
    assert (stopped.status_code, stopped.json()["status"], stopped.json()["end_reason"]) == (200, "ended", "stopped")
    again = owner_api.post(f"/api/v1/experiments/{experiment.pk}/stop/")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_decide_promote_and_then_again_is_a_409(owner_api, mql_rule):
    experiment = ExperimentFactory(rule=mql_rule)
    blocked = owner_api.post(f"/api/v1/experiments/{experiment.pk}/decide/", {"decision": "promote"})
    assert blocked.status_code == 400 and blocked.json()["detail"].startswith("Promotion blocked: Run a replay")
    assert Experiment.objects.get().status == ExperimentStatus.RUNNING
    replay()
    decided = owner_api.post(
        f"/api/v1/experiments/{experiment.pk}/decide/", {"decision": "promote", "note": "Twice as fast"}, format="json"
    )
    assert decided.status_code == 200, decided.json()
    assert (decided.json()["status"], decided.json()["decision_note"]) == ("promoted", "Twice as fast")
    assert decided.json()["final_figures"]["arms"][0]["name"] == "production"
    mql_rule.refresh_from_db()
    assert mql_rule.production_version.number == 2
    assert AuditEvent.objects.filter(action=AuditAction.EXPERIMENT_DECIDED).count() == 1
    again = owner_api.post(f"/api/v1/experiments/{experiment.pk}/decide/", {"decision": "keep"})
    assert again.status_code == 409


def test_a_decision_must_be_promote_or_keep(owner_api, mql_rule):
    experiment = ExperimentFactory(rule=mql_rule)
    refused = owner_api.post(f"/api/v1/experiments/{experiment.pk}/decide/", {"decision": "maybe"})
    assert refused.status_code == 400 and list(refused.json()) == ["decision"]


def test_the_list_filters_by_rule_and_status(owner_api, mql_rule, rule_owner, sales):
    first = ExperimentFactory(rule=mql_rule, status=ExperimentStatus.KEPT)
    second = ExperimentFactory(rule=mql_rule)
    everything = owner_api.get("/api/v1/experiments/").json()
    assert [row["id"] for row in everything] == [second.pk, first.pk]
    assert [row["id"] for row in owner_api.get("/api/v1/experiments/?status=kept").json()] == [first.pk]
    assert owner_api.get(f"/api/v1/experiments/?rule={mql_rule.pk + 1000}").json() == []
    assert owner_api.get("/api/v1/experiments/?status=sideways").status_code == 400


def test_the_detail_takes_a_bounded_number_of_queries(owner_api, mql_rule, django_assert_max_num_queries):
    experiment = ExperimentFactory(rule=mql_rule)
    ExperimentLeadFactory.create_batch(30, experiment=experiment, arm=Arm.CANDIDATE)
    with django_assert_max_num_queries(4):  # the experiment, the two figure queries (+ the session's user)
        assert owner_api.get(f"/api/v1/experiments/{experiment.pk}/").status_code == 200
