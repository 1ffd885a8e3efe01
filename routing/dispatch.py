"""Publishing routing work to Celery. The lead row is the source of truth: a publish that fails (broker
down, crash after commit) is repaired by `requeue_stuck_leads`, so a failure here is logged, never raised."""

import atexit
import logging
import os
import threading
import time
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


class BackgroundPublisher:
    """Publishes routing tasks from a daemon thread, so an intake request never waits on the broker (a Celery
    publish costs about 0.5 ms of kombu CPU, more than the insert). The thread waits `PUBLISH_LINGER_MS`
    after the first lead, and leads committed meanwhile, or while a publish is under way, leave in one task: under
    load a publish carries several leads, which is what makes it cheap per lead.

    Ids held here when the process dies are not lost: their leads are committed as `received`, and
    `requeue_stuck_leads` publishes them again after the grace period."""

    def __init__(self):
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child has the memory but not the thread
        atexit.register(self.flush, timeout=5)

    def _reset(self) -> None:
        self._changed = threading.Condition()
        self._pending: list[int] = []
        self._publishing = False
        self._thread: threading.Thread | None = None

    def submit(self, lead_ids: Sequence[int]) -> None:
        with self._changed:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="routing-publisher", daemon=True)
                self._thread.start()
            self._pending.extend(lead_ids)
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
                batch, self._pending = self._pending, []
            try:
                routing_enqueue(batch)
            except Exception:  # never let the thread die: the sweeper repairs what this publish missed
                logger.exception("Publishing routing for %d leads failed; the sweeper will retry.", len(batch))
            finally:
                with self._changed:
                    self._publishing = False
                    self._changed.notify_all()


routing_publisher = BackgroundPublisher()


def routing_enqueue_on_commit(lead_ids: Sequence[int]) -> None:
    """Once the transaction commits, publish routing for these leads from the background publisher."""
    if lead_ids:
        ids = list(lead_ids)
        transaction.on_commit(lambda: routing_publisher.submit(ids), robust=True)


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
