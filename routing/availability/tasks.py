"""Celery tasks for availability: thin wrappers around its services."""

import logging

from celery import shared_task
from django.utils import timezone

from routing.availability.services import ical_feeds_refresh
from routing.availability.waiting import waiting_leads_release
from routing.dispatch import TaskName

logger = logging.getLogger(__name__)


@shared_task(name=TaskName.RELEASE_WAITING_LEADS, acks_late=True, reject_on_worker_lost=True)
def release_waiting_leads_task() -> int:
    """Beat, every minute: route the leads held for "everyone away" whose queue's first member is in now."""
    lead_ids = waiting_leads_release(now=timezone.now())
    if lead_ids:
        logger.info("Released %d leads held for working hours to routing.", len(lead_ids))
    return len(lead_ids)


@shared_task(name=TaskName.REFRESH_TIME_OFF_FEEDS, acks_late=True, reject_on_worker_lost=True)
def refresh_time_off_feeds_task() -> int:
    """Beat, hourly: read every person's time-off calendar feed again."""
    return ical_feeds_refresh(now=timezone.now())
