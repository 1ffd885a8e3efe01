import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("handoff")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each package's `tasks` module, imported when a worker starts. Tasks carry explicit names
# (routing.dispatch.TaskName), so moving a module never renames a task.
TASK_PACKAGES = [
    "routing",
    "routing.dashboard",
    "routing.governance",
    "routing.integrations",
    "routing.reports",
    "exceptions",
]
app.autodiscover_tasks(TASK_PACKAGES)


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
