import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

import config.logs  # noqa: F401 - its Celery signal receivers: JSON logs in workers and beat from the first line

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("handoff")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Task events on without `-E`: Flower and `celery -A config events` see every task sent, started, succeeded,
# failed and retried (README: Workers and lanes). Defaults, so a CELERY_ setting would still win. Nobody
# listening costs one small publish per event, dropped by the broker.
app.add_defaults({"worker_send_task_events": True, "task_send_sent_event": True})
# Each package's `tasks` module, imported when a worker starts. Tasks carry explicit names
# (routing.dispatch.TaskName), so moving a module never renames a task.
TASK_PACKAGES = [
    "routing",
    "routing.dashboard",
    "routing.governance",
    "routing.experiments",
    "routing.integrations",
    "routing.reports",
    "routing.availability",
    "routing.capture",
    "exceptions",
]
app.autodiscover_tasks(TASK_PACKAGES)


class Beat(app.subclass_with_self("celery.apps.beat:Beat")):
    """`celery -A config beat`: with JSON logs, beat's two start-up prints (made before its logging is set up)
    are left out, as `--quiet` does, so all it writes is JSON; its "beat: Starting..." record says it started."""

    def run(self) -> None:
        from django.conf import settings

        self.quiet = self.quiet or settings.LOGGING["handlers"]["console"]["formatter"] == "json"
        super().run()


app.Beat = Beat


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(sender=None, **kwargs) -> None:
    """Treat a task as Django treats a request: keep the connection for CONN_MAX_AGE, drop it once broken.
    (Celery's own default closes it around every task, one new PostgreSQL session per lead; settings turn
    that off with CELERY_DB_REUSE_MAX.) A task run eagerly, in its caller's process, leaves the caller's
    connection alone, as Celery's does."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
