"""Notification email against a mail server that is down, drops the connection or refuses an address: one
warning per run, never a traceback, and no notification lost (it stays pending until a run delivers it)."""

import logging

import pytest
from django.core import mail

from exceptions.models import Notification
from exceptions.tasks import send_notifications_task
from tests.factories import NotificationFactory, QueueFactory, UserFactory
from tests.mail_server import FakeSMTP, refusing_port, use_smtp

pytestmark = pytest.mark.django_db


@pytest.fixture
def due(db):
    """Three due notifications, each to its own person."""
    queue = QueueFactory(name="Inbound")
    people = [UserFactory(username=f"p{n}", email=f"p{n}@example.com") for n in range(3)]
    return [NotificationFactory(queue=queue, recipient=person, item_count=1) for person in people]


def notification_logs(caplog):
    return [r for r in caplog.records if r.name == "exceptions.notifications"]


def pending() -> int:
    return Notification.objects.filter(sent_at__isnull=True).count()


def test_no_mail_server_is_one_warning_and_every_notification_stays_pending(due, settings, caplog):
    use_smtp(settings, refusing_port())
    with caplog.at_level(logging.WARNING):
        assert send_notifications_task() == 0
    (record,) = notification_logs(caplog)
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "Could not email 3 of 3 notification message(s) (ConnectionRefusedError" in record.getMessage()
    assert not [r for r in caplog.records if r.exc_info]  # no traceback anywhere
    assert pending() == 3
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # the server is back
    assert send_notifications_task() == 3
    assert sorted(m.to[0] for m in mail.outbox) == ["p0@example.com", "p1@example.com", "p2@example.com"]
    assert pending() == 0


def test_a_connection_dropped_mid_batch_keeps_only_the_unsent_pending(due, settings, caplog):
    with FakeSMTP(accept=1) as server, caplog.at_level(logging.WARNING):
        use_smtp(settings, server.server_address[1])
        assert send_notifications_task() == 1
    assert len(server.received) == 1
    (record,) = notification_logs(caplog)
    assert "Could not email 2 of 3 notification message(s) (SMTPServerDisconnected" in record.getMessage()
    assert record.exc_info is None
    unsent = Notification.objects.filter(sent_at__isnull=True)
    assert {n.recipient.email for n in unsent} == {"p0@example.com", "p1@example.com", "p2@example.com"} - set(
        server.received
    )
    with FakeSMTP() as server:
        use_smtp(settings, server.server_address[1])
        assert send_notifications_task() == 2  # the rest, and nobody twice
    assert pending() == 0


def test_an_address_refused_for_good_is_not_retried_and_the_others_are_sent(due, settings, caplog):
    with FakeSMTP(refuse=frozenset({"p1@example.com"})) as server, caplog.at_level(logging.WARNING):
        use_smtp(settings, server.server_address[1])
        assert send_notifications_task() == 3
        assert sorted(server.received) == ["p0@example.com", "p2@example.com"]
        assert send_notifications_task() == 0  # nothing left to try again
    (record,) = notification_logs(caplog)
    assert record.getMessage().startswith("The mail server refused 1 address(es) for good")
    assert "p1@example.com" in record.getMessage()
    assert pending() == 0
