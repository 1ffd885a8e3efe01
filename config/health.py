"""Liveness and readiness probes for load balancers and the demo runner."""

import logging

from django.db import connection
from django.http import JsonResponse

from config.celery import app as celery_app

logger = logging.getLogger(__name__)


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def _database_ok() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:
        logger.exception("Readiness: the database does not answer.")
        return "error"  # details go to the log, not to whoever asks the probe


def _broker_ok() -> str:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception:
        logger.exception("Readiness: the broker does not answer.")
        return "error"
