"""Every hand-off to Celery, by task name: no domain module imports a task module, so tasks can import the
domain freely and a moved module renames nothing. The names below are the wire contract (queued messages and
the beat schedule in config/settings.py refer to them); they keep the module paths the tasks first had.

Routing: the lead row is the source of truth, so a publish that fails (broker down, crash after commit) is
repaired by `requeue_stuck_leads` and is logged here, never raised. Delivery: the outbox row is, and beat's
`deliveries_due` sends what a failed publish left pending."""

import atexit
import logging
import os
import threading
import time
from collections.abc import Sequence
from enum import StrEnum

from django.conf import settings
from django.db import transaction

from config.celery import app

logger = logging.getLogger(__name__)


class TaskName:
    """The registered name of every Celery task (each task's `@shared_task(name=...)`)."""

    ROUTE_LEADS = "routing.tasks.route_leads"
    ENRICH_LEADS = "routing.integrations.tasks.enrich_leads"
    REQUEUE_STUCK_LEADS = "routing.tasks.requeue_stuck_leads"
    FOLD_OPEN_LEAD_COUNTS = "routing.tasks.fold_open_lead_counts"
    DELIVER_EVENTS = "routing.integrations.tasks.deliver_events"
    DELIVERIES_DUE = "routing.integrations.tasks.deliveries_due"
    ENRICHMENT_HEALTH = "routing.integrations.tasks.enrichment_health"
    HANDOFFS_UNCONFIRMED = "routing.integrations.tasks.handoffs_unconfirmed"
    REPLAY_RULES = "routing.governance.tasks.replay_rules_task"
    SIGN_OFF_REMINDERS = "routing.governance.tasks.sign_off_reminders_task"
    SEND_RULE_NOTICES = "routing.governance.tasks.send_rule_notices_task"
    SLA_TARGET_CHECK = "routing.governance.tasks.sla_target_check_task"
    END_DUE_EXPERIMENTS = "routing.experiments.tasks.end_due_experiments_task"
    RECONCILE_DAILY = "routing.integrations.tasks.reconcile_daily"
    ANOMALY_REPORT = "routing.operations.tasks.anomaly_report_task"
    MONDAY_CHECKLIST = "routing.operations.tasks.monday_checklist_task"
    DASHBOARD_ROLLUP = "routing.dashboard.tasks.dashboard_rollup_task"
    SLA_SWEEP = "exceptions.tasks.sla_sweep_task"
    SEND_NOTIFICATIONS = "exceptions.tasks.send_notifications_task"
    SLA_SWEEP_RECORD = "exceptions.tasks.sla_sweep_record_task"
    ROUTING_SLA_SWEEP = "exceptions.tasks.routing_sla_sweep_task"
    ROOT_CAUSE_REPORT = "exceptions.tasks.root_cause_report_task"
    SEND_ALERTS = "exceptions.alert_tasks.send_alerts"
    ALERTS_DUE = "exceptions.alert_tasks.alerts_due"
    RELEASE_WAITING_LEADS = "routing.availability.tasks.release_waiting_leads_task"
    REFRESH_TIME_OFF_FEEDS = "routing.availability.tasks.refresh_time_off_feeds_task"
    APPLY_RETENTION = "routing.tasks.apply_retention"
    TRIM_REJECTED_POSTS = "routing.capture.tasks.trim_rejected_posts_task"

    @classmethod
    def all(cls) -> set[str]:
        return {value for key, value in vars(cls).items() if key.isupper()}


class Lane(StrEnum):
    """Where routing work waits (settings.HANDOFF_QUEUES; README: Workers). Leads posted one by one are routed
    on the live lane, which a worker of its own serves; imports, backfills and re-queues go to the bulk lane."""

    LIVE = "live"
    BULK = "bulk"

    @property
    def queue(self) -> str:
        return settings.HANDOFF_QUEUES[self.value]


def routing_enqueue(lead_ids: Sequence[int], countdown: float | None = None, *, lane: Lane = Lane.BULK) -> int:
    """Publish route tasks for these leads on `lane` (now, or `countdown` seconds from now); returns how many
    leads were published."""
    chunk = settings.HANDOFF["ROUTE_CHUNK_SIZE"]
    published = 0
    for start in range(0, len(lead_ids), chunk):
        part = list(lead_ids[start : start + chunk])
        try:
            app.send_task(
                TaskName.ROUTE_LEADS, args=(part,), kwargs={"lane": lane.value}, countdown=countdown, queue=lane.queue
            )
        except Exception as exc:  # kombu OperationalError and friends: the sweeper will re-publish
            logger.warning(
                "Could not queue routing for %d leads (first id %s): %s; the sweeper will retry.",
                len(part),
                part[0],
                exc,
            )
        else:
            published += len(part)
    return published


class BackgroundPublisher:
    """Publishes routing tasks from a daemon thread, so an intake request never waits on the broker (a Celery
    publish costs about 0.5 ms of kombu CPU, more than the insert). The thread waits `PUBLISH_LINGER_MS`
    after the first lead, and leads committed meanwhile, or while a publish is under way, leave in one task: under
    load a publish carries several leads, which is what makes it cheap per lead.

    Each lane has its own pending list, so a live lead never travels in a bulk task. Ids held here when the
    process dies are not lost: their leads are committed as `received`, and
    `requeue_stuck_leads` publishes them again after the grace period."""

    def __init__(self):
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child has the memory but not the thread
        atexit.register(self.flush, timeout=5)

    def _reset(self) -> None:
        self._changed = threading.Condition()
        self._pending: dict[Lane, list[int]] = {}
        self._publishing = False
        self._thread: threading.Thread | None = None

    def submit(self, lead_ids: Sequence[int], lane: Lane) -> None:
        with self._changed:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="routing-publisher", daemon=True)
                self._thread.start()
            self._pending.setdefault(lane, []).extend(lead_ids)
            self._changed.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted has been handed to the broker (or given up on); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending and not self._publishing, timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending)
                self._publishing = True
            time.sleep(settings.HANDOFF["PUBLISH_LINGER_MS"] / 1000)
            with self._changed:
                batches, self._pending = self._pending, {}
            try:
                for lane, batch in batches.items():
                    try:
                        routing_enqueue(batch, lane=lane)
                    except Exception:  # never let the thread die: the sweeper repairs what this publish missed
                        logger.exception("Publishing routing for %d leads failed; the sweeper will retry.", len(batch))
            finally:
                with self._changed:
                    self._publishing = False
                    self._changed.notify_all()


routing_publisher = BackgroundPublisher()


def routing_enqueue_on_commit(lead_ids: Sequence[int], *, lane: Lane) -> None:
    """Once the transaction commits, publish routing for these leads on `lane` from the background publisher."""
    if lead_ids:
        ids = list(lead_ids)
        transaction.on_commit(lambda: routing_publisher.submit(ids, lane), robust=True)


def queue_depths() -> dict[str, int] | None:
    """Tasks waiting in each of the project's queues (the default queue and every lane), or None when the
    broker cannot say."""
    names = [settings.CELERY_TASK_DEFAULT_QUEUE, *settings.HANDOFF_QUEUES.values()]
    try:
        with app.connection_for_read() as conn:
            return {name: _depth(conn.default_channel, name) for name in names}
    except Exception as exc:  # unknown is not zero: the caller decides
        logger.warning("Could not read the queue depths: %s", exc)
        return None


def _depth(channel, name: str) -> int:
    try:
        return channel.queue_declare(queue=name, passive=True).message_count
    except Exception as exc:
        if str(getattr(exc, "reply_code", "")) == "404":
            return 0  # Redis keeps no key for an empty queue
        raise


def routing_backlog() -> int | None:
    """Routing tasks waiting in the broker, both lanes, or None when the broker cannot say."""
    depths = queue_depths()
    if depths is None:
        return None
    return sum(depths[lane.queue] for lane in Lane)


def enrichment_enqueue(lead_ids: Sequence[int], *, lane: Lane, countdown: float | None = None) -> None:
    """Publish enrichment of these leads on the enrichment queue (now, or `countdown` seconds from now); once
    enriched they are routed on `lane`. Never raises: a lead whose publish failed stays `received`, and
    `requeue_stuck_leads` sends it round again."""
    chunk = settings.HANDOFF["ENRICH_CHUNK_SIZE"]
    for start in range(0, len(lead_ids), chunk):
        part = list(lead_ids[start : start + chunk])
        try:
            app.send_task(TaskName.ENRICH_LEADS, args=(part,), kwargs={"lane": lane.value}, countdown=countdown)
        except Exception as exc:  # noqa: BLE001 - the lead row is the source of truth; the sweeper re-publishes
            logger.warning("Could not queue enrichment of %d leads (first id %s): %s", len(part), part[0], exc)


def deliveries_enqueue(event_ids: list[int], countdown: float | None = None) -> None:
    """Publish delivery of these outbox events; never raises (the beat sweep sends what a failed publish left
    pending)."""
    try:
        app.send_task(TaskName.DELIVER_EVENTS, args=(event_ids,), countdown=countdown, retry=False)
    except Exception:  # noqa: BLE001 - the broker may be down; the outbox row is the source of truth
        logger.warning("Could not publish delivery of events %s; the beat sweep will send them.", event_ids[:10])


def alerts_enqueue(message_ids: list[int], countdown: float | None = None) -> None:
    """Publish sending of these alert messages (exceptions.alerts) on the deliveries lane; never raises (beat's
    `alerts_due` sends what a failed publish left pending)."""
    try:
        app.send_task(TaskName.SEND_ALERTS, args=(message_ids,), countdown=countdown, retry=False)
    except Exception:  # noqa: BLE001 - the broker may be down; the alert message row is the source of truth
        logger.warning("Could not publish alert messages %s; the beat sweep will send them.", message_ids[:10])


def sweep_record_enqueue() -> None:
    """Have a worker record what the SLA sweep stamped (SLA events, grouped notifications); never raises (the
    sweep batches are the source of truth, and the next minute's sweep publishes again and records them all)."""
    try:
        app.send_task(TaskName.SLA_SWEEP_RECORD, retry=False)
    except Exception:  # noqa: BLE001 - the broker may be down; the sweep batch rows wait for the next sweep
        logger.warning("Could not publish the SLA sweep's record step; the next sweep will.")


def rule_notices_enqueue(notice_ids: list[int]) -> None:
    """Publish the email of these rule notices; never raises (beat's `send-rule-notices` sweep sends what a
    failed publish left unsent)."""
    try:
        app.send_task(TaskName.SEND_RULE_NOTICES, kwargs={"notice_ids": notice_ids}, retry=False)
    except Exception:  # noqa: BLE001 - the broker may be down; the notice row is the source of truth
        logger.warning("Could not publish rule notices %s; the beat sweep will send them.", notice_ids[:10])


def replay_enqueue(run_id: int) -> None:
    """Have a worker run this replay (called once its record is committed)."""
    app.send_task(TaskName.REPLAY_RULES, args=(run_id,))
