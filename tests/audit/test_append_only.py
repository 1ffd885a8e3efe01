import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AppendOnlyError, AuditAction, AuditEvent
from audit.services import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    return audit_record(action=AuditAction.RULES_IMPORTED, outcome="imported")


def test_the_application_refuses_updates_and_deletes(event):
    event.outcome = "tampered"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(outcome="tampered")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


@pytest.mark.parametrize("statement", ["UPDATE audit_auditevent SET outcome = 'x'", "DELETE FROM audit_auditevent"])
def test_the_database_refuses_updates_and_deletes(event, statement):
    # The trigger refuses the owner; the application role is refused before it, having no UPDATE or DELETE
    # privilege on the table (tests/audit/test_db_roles.py).
    refusal = "append-only|permission denied for table audit_auditevent"
    with pytest.raises(DatabaseError, match=refusal), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert AuditEvent.objects.get(pk=event.pk).outcome == "imported"


def test_engine_events_are_labelled_engine(event):
    assert (event.actor, event.actor_label) == (None, "engine")
