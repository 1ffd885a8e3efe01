"""PostgreSQL connections dropped in the middle of a routing task (pg_terminate_backend, as a failover or an
idle-session killer does). The task fails with an OperationalError, which it retries with backoff; routing is
idempotent, so the leads committed before the drop are skipped and the rest end assigned or in an exception,
never stuck `received`."""

import json

import pytest

from exceptions.models import ExceptionReason
from routing.models import Lead, LeadStatus
from tests.conftest import wait_until
from tests.factories import LeadPayloadFactory
from tests.faults.helpers import assert_nothing_lost, backends_waiting_for_a_lock, row_locked

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

KEEPS_CONNECTIONS = {"TEST_CONN_MAX_AGE": "60"}  # as production does: one connection across tasks

DROPS = 2  # the first run of the task and its first retry each lose their connection


@pytest.mark.parametrize("connections", ["one per task", "kept across tasks"])
def test_a_task_whose_database_connection_drops_retries_and_leaves_no_lead_stuck(
    processes, connections, source_client, ae_rule
):
    processes.worker(**(KEEPS_CONNECTIONS if connections == "kept across tasks" else {}))
    # lead_ids in input order, so the task routes them in this order (leads are inserted sorted by lead_id)
    items = [
        LeadPayloadFactory(lead_id="drop-0"),  # an MQL: Account Executives
        LeadPayloadFactory(lead_id="drop-1", lifecycle_stage="customer"),  # no rule matches: exception
        LeadPayloadFactory(lead_id="drop-2"),
        LeadPayloadFactory(lead_id="drop-3", email=None),  # neither email nor phone: exception
        LeadPayloadFactory(lead_id="drop-4"),
        LeadPayloadFactory(lead_id="drop-5"),
    ]
    # Holding the queue's row lock stops the worker inside the first MQL's routing transaction, mid-task.
    with row_locked("routing_queue", ae_rule.queue_id) as holder:
        response = source_client.post("/api/v1/leads/batch/", data=json.dumps(items), content_type="application/json")
        accepted = {r["lead_id"]: r["id"] for r in response.json()["results"]}
        assert len(accepted) == 6

        dropped: list[int] = []

        def a_new_blocked_backend():
            return next((pid for pid in backends_waiting_for_a_lock(holder) if pid not in dropped), None)

        for attempt in range(DROPS + 1):
            pid = wait_until(a_new_blocked_backend, what=f"run {attempt + 1} of the task to block mid-routing")
            if attempt == DROPS:
                break  # the task came back after every drop; now let it through
            holder.execute("SELECT pg_terminate_backend(%s)", [pid])  # the worker's connection drops
            dropped.append(pid)
        assert Lead.objects.filter(status=LeadStatus.RECEIVED).count() == 6

    wait_until(
        lambda: not Lead.objects.filter(status=LeadStatus.RECEIVED).exists(),
        what="the retried task to route every lead",
    )
    outcome = {lead.lead_id: lead.status for lead in Lead.objects.all()}
    assert outcome == {
        "drop-0": LeadStatus.ASSIGNED,
        "drop-1": LeadStatus.EXCEPTION,
        "drop-2": LeadStatus.ASSIGNED,
        "drop-3": LeadStatus.EXCEPTION,
        "drop-4": LeadStatus.ASSIGNED,
        "drop-5": LeadStatus.ASSIGNED,
    }
    reasons = {lead.lead_id: lead.exceptions.get().reason for lead in Lead.objects.filter(status=LeadStatus.EXCEPTION)}
    assert reasons == {"drop-1": ExceptionReason.NO_MATCHING_RULE, "drop-3": ExceptionReason.MISSING_CONTACT}
    assert_nothing_lost(accepted.values())
