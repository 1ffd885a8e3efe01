"""Beat tasks keeping the dashboard's rollups: recent days every few minutes, five weeks each night."""

import logging

from celery import shared_task

from routing.dashboard.rollups import RECENT_DAYS, dashboard_rollup_recent
from routing.dispatch import TaskName

logger = logging.getLogger(__name__)


@shared_task(name=TaskName.DASHBOARD_ROLLUP, acks_late=True, soft_time_limit=600, time_limit=660)
def dashboard_rollup_task(days_back: int = RECENT_DAYS) -> int:
    """Idempotent: each day is rebuilt whole under its row lock, so a duplicate tick only repeats work."""
    days = dashboard_rollup_recent(days_back=max(1, days_back))
    logger.info("dashboard rollups rebuilt for %s day(s)", days)
    return days
