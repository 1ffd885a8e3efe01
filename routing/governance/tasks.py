"""Celery tasks for governance: thin wrappers around replay, the Monday reminder and owner notices' mail."""

import logging

from celery import shared_task

from routing.dispatch import TaskName
from routing.governance.metrics import sla_target_check
from routing.governance.notices import RULE_NOTICE_BATCH, rule_notices_send
from routing.governance.reminders import sign_off_reminders_send
from routing.governance.replay import replay_execute, replay_fail

logger = logging.getLogger(__name__)


@shared_task(
    name=TaskName.REPLAY_RULES, acks_late=True, reject_on_worker_lost=True, soft_time_limit=600, time_limit=660
)
def replay_rules_task(run_id: int) -> None:
    try:
        replay_execute(run_id=run_id)
    except Exception as exc:
        logger.exception("Replay %s failed.", run_id)
        replay_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}")


@shared_task(name=TaskName.SIGN_OFF_REMINDERS, acks_late=True)
def sign_off_reminders_task() -> int:
    return sign_off_reminders_send()


@shared_task(name=TaskName.SEND_RULE_NOTICES, acks_late=True, reject_on_worker_lost=True)
def send_rule_notices_task(notice_ids: list[int] | None = None, max_batches: int = 20) -> int:
    """Email unsent rule notices: those just written (`notice_ids`, published after commit), or, from beat,
    every unsent one in batches until none is left (or 20 batches, then the next tick). A batch not sent in
    full (fewer left, or the mail server failing: logged once) ends the run."""
    if notice_ids is not None:
        return rule_notices_send(notice_ids=notice_ids)
    sent = 0
    for _ in range(max_batches):
        batch = rule_notices_send(limit=RULE_NOTICE_BATCH)
        sent += batch
        if batch < RULE_NOTICE_BATCH:
            break
    return sent


@shared_task(name=TaskName.SLA_TARGET_CHECK, acks_late=True)
def sla_target_check_task() -> int:
    return sla_target_check()
