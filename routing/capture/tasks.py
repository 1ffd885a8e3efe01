"""Celery tasks for the capture edge: thin wrappers around its services."""

import logging

from celery import shared_task

from routing.capture.rejections import rejected_posts_trim
from routing.dispatch import TaskName

logger = logging.getLogger(__name__)


@shared_task(name=TaskName.TRIM_REJECTED_POSTS, acks_late=True, reject_on_worker_lost=True)
def trim_rejected_posts_task() -> int:
    """Beat, every 10 minutes: keep each source's rejected posts within their bounds (the counts stay)."""
    trimmed = rejected_posts_trim()
    if trimmed:
        logger.info("Trimmed %d rejected posts beyond their bounds.", trimmed)
    return trimmed
