"""Erasure and retention (routing/erasure.py, audit migration 0010): a person's values leave every table, the
append-only ones included, through the database function alone; the application role still may not UPDATE or
DELETE audit or history rows, and the trigger still refuses the owner every change but the erasure's.

The suite connects as the application role where CI sets one up (tests/audit/test_db_roles.py). Run locally as
one role for everything, the tests that need the application's limits make a role with exactly its grants
(audit/db_roles.py) inside the test's transaction, and switch to it."""

import datetime as dt
import io
import os
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.db_roles import grant_statements, owner_connection, schema_tables
from audit.models import AuditAction, AuditEvent, Override
from audit.services import audit_record
from exceptions.models import SlaEvent
from routing.accounts.models import LeadIdentity
from routing.capture.models import RejectedPost, RejectionReason
from routing.erasure import erased_token, person_erase, retention_apply
from routing.integrations.models import DeliveryAttempt, EnrichmentReceipt, OutboxStatus
from routing.models import Lead
from routing.tasks import apply_retention
from tests.factories import (
    EnrichmentProviderFactory,
    ExceptionItemFactory,
    LeadFactory,
    OutboxEventFactory,
    QueueFactory,
    SourceFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

EMAIL, PHONE = "ada.lovelace@example.com", "+44 20 7946 0000"
# What must be found nowhere after the erasure (case-insensitive): the email, the phone's digits, the surname.
TRACES = [EMAIL, "7946 0000", "Lovelace", "analytical-engine"]


@contextmanager
def as_application():
    """Statements on `connection` run as the application's role: the connection's own where CI connects as it;
    otherwise a role made here with the application's grants, gone when the test's transaction rolls back."""
    if settings.HANDOFF_DATABASE_OWNER:
        yield
        return
    role, function_owner = f"erasure_probe_{os.getpid()}", f"erasure_owner_{os.getpid()}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (owner,) = cursor.fetchone()
        for name in (role, function_owner):
            cursor.execute(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN "
                f"CREATE ROLE {name} NOLOGIN; END IF; END $$"
            )
        for statement in grant_statements(app_role=role, owner_role=owner, tables=schema_tables(connection)):
            cursor.execute(statement)
        # As in CI, the erasure function runs as a role that is no superuser (there, the tables' owner).
        cursor.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {function_owner}")
        cursor.execute(f"ALTER FUNCTION handoff_erase(bigint[], text, boolean) OWNER TO {function_owner}")
        cursor.execute(f"SET ROLE {role}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def refused(statement: str, match: str = "permission denied"):
    with pytest.raises(DatabaseError, match=match), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)


def rows_holding(text: str) -> dict[str, int]:
    """Every table of the schema whose rows hold `text` anywhere, as the database prints a row."""
    found = {}
    with connection.cursor() as cursor:
        for table in sorted(schema_tables(connection)):
            cursor.execute(f"SELECT count(*) FROM {table} AS row WHERE row::text ILIKE %s", [f"%{text}%"])
            if count := cursor.fetchone()[0]:
                found[table] = count
    return found


def snapshot() -> dict[str, str]:
    with connection.cursor() as cursor:
        result = {}
        for table in sorted(schema_tables(connection)):
            cursor.execute(f"SELECT md5(coalesce(string_agg(row::text, '|' ORDER BY row::text), '')) FROM {table} row")
            result[table] = cursor.fetchone()[0]
        return result


@pytest.fixture
def ada(ops_person):
    """Ada's lead, with her values in every place the product keeps them: the lead and its history (an edit),
    her identity key, routing's audit events, an override's reason, an exception item's notes and clock events,
    an outbox payload and a delivery error, an enrichment receipt, a rejected post; and Bob's lead beside it."""
    source = SourceFactory(name="web")
    lead = LeadFactory(
        origin=source,
        lead_id="web-1",
        email=EMAIL,
        phone="020 7946 0000",
        first_name="Ada",
        last_name="Lovelace",
        company="Analytical Ltd",
        attributes={"twitter": "@analytical-engine", "visits": 7},
    )
    lead.phone = PHONE  # an edit: the history keeps both numbers
    lead.save()
    LeadIdentity.objects.create(lead=lead, email_key=EMAIL, linked_at=timezone.now())
    audit_record(action=AuditAction.ROUTING_DECISION, lead=lead, inputs=lead.routing_view(), outcome="matched")
    audit_record(
        action=AuditAction.LEAD_EDITED,
        actor=ops_person,
        lead=lead,
        data={"before": {"phone": "020 7946 0000"}, "after": {"phone": PHONE}},
    )
    queue = QueueFactory(name="Sales")
    Override.objects.create(
        lead=lead, to_queue=queue, by=ops_person, at=timezone.now(), reason="Ada Lovelace asked for Olga by name."
    )
    item = ExceptionItemFactory(
        lead=lead, detail=f"No rule for {EMAIL}", resolution_note="Rang Ada Lovelace on 020 7946 0000, no answer."
    )
    SlaEvent.objects.create(item=item, clock="ack", kind="started", at=timezone.now(), data={"note": f"to {EMAIL}"})
    audit_record(action=AuditAction.EXCEPTION_OPENED, exception=item, data={"detail": item.detail})
    event = OutboxEventFactory(
        lead=lead,
        payload={"type": "lead.assigned", "data": {"lead": {"email": EMAIL, "phone": PHONE, "last_name": "Lovelace"}}},
        status=OutboxStatus.DELIVERED,
        delivered_at=timezone.now(),
    )
    DeliveryAttempt.objects.create(event=event, number=1, at=timezone.now(), latency_ms=5, error=f"422: {EMAIL}")
    EnrichmentReceipt.objects.create(
        provider=EnrichmentProviderFactory(),
        lead=lead,
        at=timezone.now(),
        attempt=1,
        outcome="invalid",
        latency_ms=5,
        invalid={"phone": f"{PHONE} is not a mobile number"},
    )
    RejectedPost.objects.create(
        source=source,
        received_at=timezone.now(),
        status_code=400,
        reason=RejectionReason.INVALID_FIELDS,
        lead_id="web-1",
        size_bytes=60,
        excerpt=f'{{"lead_id": "web-1", "email": "{EMAIL.upper()}", "country": "UK"}}',
    )
    LeadFactory(origin=source, lead_id="web-2", email="bob@example.com", last_name="Babbage")
    return lead


def test_erase_person_leaves_no_trace_of_the_person_in_any_table(ada, ops_person):
    assert set(rows_holding(EMAIL)) >= {"routing_lead", "routing_historicallead", "audit_auditevent"}
    out = io.StringIO()
    with as_application():
        call_command("erase_person", EMAIL.upper(), "--as", "olga", stdout=out)
    for trace in TRACES:
        assert rows_holding(trace) == {}, trace
    ada.refresh_from_db()
    assert ada.email == erased_token(EMAIL)
    assert ada.phone.startswith("erased:") and len(ada.phone) <= 32
    assert ada.first_name.startswith("erased:") and ada.company == "Analytical Ltd"  # company is not personal
    assert set(ada.attributes) == {"twitter", "visits"}
    assert all(value.startswith("erased:") for value in ada.attributes.values())
    bob = Lead.objects.get(lead_id="web-2")
    assert (bob.email, bob.last_name) == ("bob@example.com", "Babbage")
    assert Lead.history.filter(id=bob.pk, email="bob@example.com").exists()
    # The trail keeps its rows and their order, with hashes in place of values.
    decision = AuditEvent.objects.get(lead=ada, action=AuditAction.ROUTING_DECISION)
    assert decision.outcome == "matched"
    assert decision.inputs["email"] == erased_token(EMAIL)
    assert decision.inputs["company"] == "Analytical Ltd"
    assert "Changed" in out.getvalue()


def test_the_erasure_event_records_who_and_how_many_rows_and_no_personal_value(ada, ops_person):
    with as_application():
        erasure = person_erase(email=EMAIL, phone=PHONE, by=ops_person)
    event = AuditEvent.objects.get(action=AuditAction.PERSON_ERASED)
    assert event == erasure.event
    assert (event.actor, event.actor_label) == (ops_person, "olga")
    assert event.data["email_hash"] == erased_token(EMAIL)
    assert event.data["lead_ids"] == [ada.pk]
    assert event.data["rows"] == erasure.rows
    for table in [
        "routing_lead",
        "routing_historicallead",
        "routing_leadidentity",
        "audit_auditevent",
        "audit_override",
        "exceptions_exceptionitem",
        "exceptions_slaevent",
        "routing_outboxevent",
        "routing_deliveryattempt",
        "routing_enrichmentreceipt",
        "routing_rejectedpost",
    ]:
        assert erasure.rows[table] >= 1, table
    assert erasure.rows["routing_historicallead"] == 2
    text = f"{event.data} {event.inputs} {event.outcome}".lower()
    for trace in [*TRACES, "ada.", "7946"]:
        assert trace.lower() not in text


def test_erasing_again_finds_the_same_leads_and_changes_nothing(ada, ops_person):
    first = person_erase(email=EMAIL, by=ops_person)
    before = snapshot()
    again = person_erase(email=EMAIL, by=ops_person)
    assert again.lead_ids == first.lead_ids == [ada.pk]
    assert again.total == 0
    after = snapshot()
    assert {table for table in before if before[table] != after[table]} == {"audit_auditevent"}  # the new event
    assert AuditEvent.objects.filter(action=AuditAction.PERSON_ERASED).count() == 2


def test_a_dry_run_counts_and_writes_nothing(ada, ops_person):
    before = snapshot()
    out = io.StringIO()
    with as_application():
        call_command("erase_person", EMAIL, "--phone", PHONE, "--dry-run", "--as", "olga", stdout=out)
    assert snapshot() == before
    assert f"Leads: {ada.pk}" in out.getvalue()
    assert "routing_historicallead: 2 rows" in out.getvalue()
    assert "nothing written" in out.getvalue()


def test_the_phone_alone_finds_leads_without_the_email(ops_person):
    lead = LeadFactory(email=None, phone="(020) 7946-0000", first_name="Ada", last_name="Lovelace")
    erasure = person_erase(email="someone.else@example.com", phone="020 7946 0000", by=ops_person)
    assert erasure.lead_ids == [lead.pk]
    assert rows_holding("Lovelace") == {}


def test_an_unknown_username_or_a_bad_email_is_refused(ada, ops_person):
    with pytest.raises(CommandError, match="no active account"):
        call_command("erase_person", EMAIL, "--as", "nobody")
    with pytest.raises(CommandError, match="not an email address"):
        call_command("erase_person", "ada", "--as", "olga")
    assert rows_holding(EMAIL)


def test_the_application_still_cannot_update_or_delete_audit_or_history_rows(ada, ops_person):
    person_erase(email=EMAIL, by=ops_person)
    with as_application():
        for statement in [
            "UPDATE audit_auditevent SET data = '{}'",
            "DELETE FROM audit_auditevent",
            "UPDATE routing_historicallead SET email = 'x'",
            "DELETE FROM routing_historicallead",
            "UPDATE audit_override SET reason = 'x'",
        ]:
            refused(statement)
        # The trigger's way through is the function's own setting; set by hand it gives no privilege.
        with connection.cursor() as cursor:
            cursor.execute("SET handoff.erasing = 'on'")
        refused("UPDATE audit_auditevent SET data = '{}'")
        refused("UPDATE routing_historicallead SET email = 'x'")
        with connection.cursor() as cursor:
            cursor.execute("RESET handoff.erasing")


@pytest.mark.django_db(transaction=True)
def test_the_trigger_refuses_the_owner_everything_but_the_erasure(ada, ops_person):
    """Defence in depth: as the owner (who may UPDATE), the trail still refuses a change, with or without the
    erasure's setting, unless nothing but inputs and data change inside the function."""
    owner = owner_connection(connection) or connection
    try:
        with owner.cursor() as cursor:
            for setting in ("off", "on"):
                cursor.execute(f"SET handoff.erasing = '{setting}'")
                for statement in (
                    "UPDATE audit_auditevent SET outcome = 'x'",
                    "UPDATE audit_auditevent SET occurred_at = occurred_at - interval '1 day', data = '{}'",
                    "DELETE FROM audit_auditevent",
                ):
                    with pytest.raises(DatabaseError, match="append-only"):
                        cursor.execute(statement)  # autocommit: the failed statement alone is undone
            cursor.execute("RESET handoff.erasing")
            cursor.execute("UPDATE audit_auditevent SET data = data WHERE false")  # the statement itself is fine
    finally:
        if owner is not connection:
            owner.close()
    assert AuditEvent.objects.filter(lead=ada).count() == 2


def test_retention_empties_old_payloads_and_keeps_recent_ones(settings, ada):
    settings.HANDOFF = {**settings.HANDOFF, "RETENTION_PAYLOAD_DAYS": 90, "RETENTION_LEAD_DAYS": 0}
    now, old = timezone.now(), timezone.now() - dt.timedelta(days=91)
    source = SourceFactory(name="old-form")
    old_delivered = OutboxEventFactory(payload={"lead": "x"}, status=OutboxStatus.DELIVERED, delivered_at=old)
    old_dead = OutboxEventFactory(payload={"lead": "y"}, status=OutboxStatus.DEAD, created_at=old)
    recent = OutboxEventFactory(payload={"lead": "z"}, status=OutboxStatus.DELIVERED, delivered_at=now)
    DeliveryAttempt.objects.create(event=old_dead, number=1, at=old, latency_ms=1, error="500: old body")
    kept_attempt = DeliveryAttempt.objects.create(event=recent, number=1, at=now, latency_ms=1, error="500: new")
    provider = EnrichmentProviderFactory()
    EnrichmentReceipt.objects.create(
        provider=provider, lead=ada, at=old, attempt=1, outcome="failed", latency_ms=1, error="old answer"
    )
    for received_at in (old, now):
        RejectedPost.objects.create(
            source=source, received_at=received_at, status_code=400, reason="unreadable", size_bytes=1, excerpt="{"
        )

    result = retention_apply(now=now)

    old_delivered.refresh_from_db(), old_dead.refresh_from_db(), recent.refresh_from_db()
    assert (old_delivered.payload, old_dead.payload, recent.payload) == ({}, {"lead": "y"}, {"lead": "z"})
    assert list(DeliveryAttempt.objects.filter(at=old).values_list("error", flat=True)) == [""]
    kept_attempt.refresh_from_db()
    assert kept_attempt.error == "500: new"
    assert EnrichmentReceipt.objects.get(at=old).error == ""
    assert list(RejectedPost.objects.filter(source=source).values_list("received_at", flat=True)) == [now]
    assert result.rows["routing_rejectedpost"] == 1 and result.leads_erased == 0
    assert rows_holding(EMAIL)  # leads are kept forever by default
    assert not AuditEvent.objects.filter(action=AuditAction.PERSON_ERASED).exists()


def test_retention_erases_only_leads_older_than_the_lead_retention(settings, ada):
    settings.HANDOFF = {**settings.HANDOFF, "RETENTION_LEAD_DAYS": 365, "RETENTION_PAYLOAD_DAYS": 0}
    old = LeadFactory(email="old@example.com", last_name="Ancient", received_at=timezone.now() - dt.timedelta(days=400))

    summary = apply_retention()  # the beat task's body, run here

    assert summary["leads_erased"] == 1
    old.refresh_from_db()
    assert old.email == erased_token("old@example.com") and old.last_name.startswith("erased:")
    assert rows_holding("Ancient") == {}
    assert rows_holding(EMAIL)  # Ada's lead is recent
    event = AuditEvent.objects.get(action=AuditAction.PERSON_ERASED)
    assert (event.actor, event.data["reason"], event.data["lead_ids"]) == (None, "retention", [old.pk])
    assert retention_apply().leads_erased == 0  # nothing left to erase
    assert "apply-retention" in settings.CELERY_BEAT_SCHEDULE


def test_the_admin_action_shows_what_would_change_then_erases_once_confirmed(admin_client, ada):
    changelist = "/admin/routing/lead/"
    form = {"action": "erase_person", "_selected_action": [ada.pk]}
    page = admin_client.post(changelist, form)
    assert page.status_code == 200
    assert b"rows that would change" in page.content and b"routing_historicallead: 2" in page.content
    assert rows_holding(EMAIL)

    done = admin_client.post(changelist, {**form, "confirm": "yes"}, follow=True)
    assert b"Erased 1 people" in done.content
    assert rows_holding(EMAIL) == {}
    assert AuditEvent.objects.get(action=AuditAction.PERSON_ERASED).actor.username == "admin"


def test_staff_who_are_not_superusers_are_not_offered_the_erasure(client, ada):
    staff = UserFactory(username="stan", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_lead", "change_lead"]))
    client.force_login(staff)
    page = client.get("/admin/routing/lead/")
    assert page.status_code == 200
    assert b"erase_person" not in page.content
