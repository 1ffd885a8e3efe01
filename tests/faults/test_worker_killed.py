"""A worker node killed with SIGKILL in the middle of routing: parent and pool processes at once, so nothing
is acknowledged, rejected or handed back. The message stays in Redis's `unacked` set; a new worker restores
it once the visibility timeout has passed and runs the task again. Leads the dead worker had committed are
skipped (routing is idempotent), the rest are routed: every lead assigned exactly once."""

import json
import subprocess
import time

import pytest
from django.conf import settings

from routing.models import Lead, LeadStatus
from tests.conftest import broker, wait_until
from tests.factories import LeadPayloadFactory
from tests.faults.helpers import (
    assert_nothing_lost,
    backends_waiting_for_a_lock,
    row_locked,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

# The replacement worker's visibility timeout (production: CELERY_VISIBILITY_TIMEOUT, 900 s): how long a
# delivered message may stay unacknowledged before a restore sweep hands it to another consumer. A worker runs
# that sweep as it starts (and every unacked_restore_interval × throttle, 25 s, afterwards).
VISIBILITY_TIMEOUT = 2


def unacked_ages(client) -> list[float]:
    """Seconds since each unacknowledged message was delivered (kombu scores `unacked_index` by delivery time)."""
    now = time.time()
    return [now - delivered for _, delivered in client.zrange("unacked_index", 0, -1, withscores=True)]


def group_alive(pgid: int) -> bool:
    return subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True).returncode == 0


def test_after_a_worker_is_killed_mid_routing_a_new_worker_assigns_every_lead_exactly_once(
    processes, source_client, ae_rule
):
    client = broker()
    # What an interrupted earlier run may have left in this suite's broker database (its bindings stay).
    bulk = settings.HANDOFF_QUEUES["bulk"]  # a batch's leads are routed on the bulk lane
    client.delete(bulk, "unacked", "unacked_index")
    # lead_ids in input order, so the leads are inserted, and routed by the task, in this order
    items = [LeadPayloadFactory(lead_id=f"lead-{n}") for n in range(8)]
    response = source_client.post("/api/v1/leads/batch/", data=json.dumps(items), content_type="application/json")
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * 8
    accepted = [r["id"] for r in results]
    # One task carries the eight leads; it waits in the queue until a worker starts.
    wait_until(lambda: client.llen(bulk) == 1, what="the routing task to be queued")

    with row_locked("routing_lead", accepted[3]) as holder:  # the task will block on the fourth lead
        first = processes.worker("doomed-worker")
        wait_until(lambda: backends_waiting_for_a_lock(holder), what="the worker to block on the fourth lead")
        # The batch skipped the held lead and routed the other seven; it now waits to route that one alone.
        statuses = dict(Lead.objects.filter(pk__in=accepted).values_list("id", "status"))
        assert [statuses[i] for i in accepted] == [LeadStatus.ASSIGNED] * 3 + [LeadStatus.RECEIVED] + [
            LeadStatus.ASSIGNED
        ] * 4
        assert client.hlen("unacked") == 1  # delivered, not acknowledged (acks_late)

        first.kill()  # SIGKILL to the parent and its pool processes together
        wait_until(lambda: not group_alive(first.pid), timeout=10, what="every process of the killed worker to be gone")
    # Its last transaction never committed; the message is still with the dead consumer.
    assert client.hlen("unacked") == 1 and client.llen(bulk) == 0
    assert Lead.objects.filter(pk__in=accepted, status=LeadStatus.RECEIVED).count() == 1

    wait_until(
        lambda: min(unacked_ages(client)) > VISIBILITY_TIMEOUT,
        timeout=VISIBILITY_TIMEOUT + 5,
        what="the unacknowledged message to outlive the visibility timeout",
    )
    processes.worker("new-worker", CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT))

    wait_until(
        lambda: not Lead.objects.filter(pk__in=accepted, status=LeadStatus.RECEIVED).exists(),
        what="the new worker to restore the task and route the remaining leads",
    )
    assert set(Lead.objects.values_list("status", flat=True)) == {LeadStatus.ASSIGNED}
    assert_nothing_lost(accepted)
