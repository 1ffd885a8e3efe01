"""Celery tasks for governance: thin wrappers around replay and the Monday reminder."""

import logging

from celery import shared_task

from routing.dispatch import TaskName
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
