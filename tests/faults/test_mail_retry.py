"""The Monday checklist email while the mail server is down, on a real Celery worker: each try is one warning
line and no traceback, and the task tries again (HANDOFF_CHECKLIST_RETRY_SECONDS apart) until the server is
back and takes it, once. The checklist has no stored copy a later run could send, so the task retries."""

import pytest

from routing.reports.tasks import monday_checklist_task
from tests.conftest import wait_until
from tests.mail_server import FakeSMTP, refusing_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

WARNING = "Could not email 1 of 1 Monday checklist email(s) (ConnectionRefusedError"


def test_the_checklist_email_is_tried_again_until_the_mail_server_takes_it(processes):
    port = refusing_port()
    worker = processes.worker(
        DJANGO_SETTINGS_MODULE="config.settings",  # the test settings keep mail in memory
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        DJANGO_EMAIL_HOST="127.0.0.1",
        DJANGO_EMAIL_PORT=str(port),
        HANDOFF_SYSTEM_OWNER_EMAIL="ops-lead@example.com",
        HANDOFF_CHECKLIST_RECIPIENTS="lead@example.com",
        HANDOFF_CHECKLIST_RETRY_SECONDS="1",
    )
    monday_checklist_task.delay()
    wait_until(lambda: worker.output().count(WARNING) >= 2, what="two tries refused by the mail server")

    with FakeSMTP(port=port) as server:  # the mail server is back
        wait_until(lambda: len(server.received) == 2, what="the checklist email")
        wait_until(lambda: "succeeded" in worker.output(), what="the task to finish")
    assert sorted(server.received) == ["lead@example.com", "ops-lead@example.com"]  # once
    output = worker.output()
    assert "Traceback" not in output
    tries = output.count(WARNING)
    assert output.count("retry: Retry in 1s") == tries  # each refused try is retried, and logged once
