"""Bench-only Celery tasks, loaded into the benchmark's workers with `-I bench._e2e_tasks`: the baselines
that routing is compared with. Published by name (`send_task`), so the publisher need not import this."""

import os
import time

from celery import shared_task
from django.db import connection

STAMP_TABLE = "bench_e2e_stamp"
STAMP_TASK = "bench_e2e.stamp"
NOOP_TASK = "bench_e2e.noop"

CREATE_STAMP_TABLE = f"""
CREATE TABLE IF NOT EXISTS {STAMP_TABLE} (
    id bigserial PRIMARY KEY,
    published_at double precision NOT NULL,
    started_at double precision NOT NULL,
    pid integer NOT NULL
)"""


@shared_task(name=STAMP_TASK, acks_late=True)
def stamp(published_at: float) -> None:
    """The floor under routing: a task that writes one row (in autocommit, so one commit) saying when it ran."""
    started_at = time.time()  # like Lead.assigned_at: stamped before the write commits
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {STAMP_TABLE} (published_at, started_at, pid) VALUES (%s, %s, %s)",
            [published_at, started_at, os.getpid()],
        )


@shared_task(name=NOOP_TASK, acks_late=True)
def noop() -> None:
    """The ceiling of task throughput: Celery and Redis alone."""
