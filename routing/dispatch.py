"""Publishing routing work to Celery. The lead row is the source of truth: a publish that fails (broker
down, crash after commit) is repaired by `requeue_stuck_leads`, so a failure here is logged, never raised."""

import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def routing_enqueue(lead_ids: Sequence[int], countdown: float | None = None) -> int:
    """Publish route tasks for these leads (now, or `countdown` seconds from now); returns how many leads
    were published."""
    from routing.tasks import route_leads

    chunk = settings.HANDOFF["ROUTE_CHUNK_SIZE"]
    published = 0
    for start in range(0, len(lead_ids), chunk):
        part = list(lead_ids[start : start + chunk])
        try:
            route_leads.apply_async((part,), countdown=countdown)
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


def routing_enqueue_on_commit(lead_ids: Sequence[int]) -> None:
    if lead_ids:
        ids = list(lead_ids)
        transaction.on_commit(lambda: routing_enqueue(ids), robust=True)


def routing_backlog() -> int | None:
    """Routing tasks waiting in the broker, or None when the broker cannot say."""
    from config.celery import app

    try:
        with app.connection_for_read() as conn:
            return conn.default_channel.queue_declare(
                queue=settings.CELERY_TASK_DEFAULT_QUEUE, passive=True
            ).message_count
    except Exception as exc:  # unknown is not zero: the caller decides
        if str(getattr(exc, "reply_code", "")) == "404":
            return 0  # Redis keeps no key for an empty queue
        logger.warning("Could not read the routing backlog: %s", exc)
        return None
