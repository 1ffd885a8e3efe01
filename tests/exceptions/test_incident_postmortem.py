"""Incident owner, SLA and postmortems: a large incident (HANDOFF_POSTMORTEM_THRESHOLD of the leads captured on
the days it spanned) needs a postmortem once resolved; resolving is never blocked, the incident is "postmortem
due" (overdue past HANDOFF_POSTMORTEM_DUE_DAYS) until one is written."""

import datetime as dt

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client

from audit.models import AuditAction, AuditEvent
from exceptions.checks import postmortem_threshold_check
from exceptions.incident_actions import incident_assign, incident_resolve
from exceptions.incidents import Cause
from exceptions.models import ExceptionIncident, ExceptionReason, ExceptionStatus, Resolution
from exceptions.postmortems import PostmortemRefused, affected_share, incident_postmortem_write
from exceptions.services import exception_open, exception_resolve
from tests.factories import LeadFactory, MembershipFactory, QueueFactory

pytestmark = pytest.mark.django_db

CRM_DOWN = Cause("delivery_failed:1:HTTP 5xx", "Deliveries to CRM fail: HTTP 5xx")
T0 = dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.UTC)
WRITTEN = "The CRM rejected writes for 40 minutes after a token rotation; we now alert on its 5xx rate."


def incident_of(count, *, other_leads=0) -> ExceptionIncident:
    """`count` delivery_failed items of one cause, among `other_leads` leads captured the same day."""
    queue = QueueFactory(name="Triage")
    LeadFactory.create_batch(other_leads)
    for _ in range(count):
        exception_open(lead=LeadFactory(), reason=ExceptionReason.DELIVERY_FAILED, queue=queue, cause=CRM_DOWN)
    return ExceptionIncident.objects.get(cause=CRM_DOWN.key)


@pytest.fixture
def ops_client(ops_person):
    client = Client()
    client.force_login(ops_person)
    return client


def resolve(incident, by):
    return incident_resolve(incident=incident, by=by, resolution=Resolution.FIXED_UPSTREAM, note="CRM back.")[0]


# --- measuring ---------------------------------------------------------------------------------------------


def test_share_counts_the_leads_captured_on_the_days_the_incident_spanned():
    with time_machine.travel(T0 - dt.timedelta(days=1), tick=False):
        LeadFactory.create_batch(50)  # the day before: not in its window
    with time_machine.travel(T0, tick=False):
        LeadFactory.create_batch(20)

    assert affected_share(item_count=2, start=T0, end=T0 + dt.timedelta(hours=3)) == pytest.approx(0.1)


def test_a_large_incident_needs_a_postmortem_due_days_after_it_resolves(ops_person):
    with time_machine.travel(T0, tick=False):
        incident = incident_of(6, other_leads=14)  # 6 of 20 leads: 30%
    with time_machine.travel(T0 + dt.timedelta(hours=2), tick=False):
        resolved = resolve(incident, ops_person)

    assert resolved.status == ExceptionStatus.RESOLVED  # resolving is never held up by the postmortem
    assert resolved.postmortem_required and resolved.postmortem_due
    assert resolved.affected_share == pytest.approx(0.3)
    assert resolved.postmortem_due_at == T0 + dt.timedelta(hours=2, days=5)
    stored = ExceptionIncident.objects.get(pk=incident.pk)
    assert (stored.postmortem_required, stored.postmortem_due_at) == (True, resolved.postmortem_due_at)


def test_a_small_incident_needs_no_postmortem(ops_person):
    with time_machine.travel(T0, tick=False):
        incident = incident_of(3, other_leads=97)  # 3%
        resolved = resolve(incident, ops_person)

    assert not resolved.postmortem_required and resolved.postmortem_due_at is None
    assert resolved.affected_share == pytest.approx(0.03)


def test_the_threshold_is_a_fraction_from_the_settings(ops_person, settings):
    settings.HANDOFF = {**settings.HANDOFF, "POSTMORTEM_THRESHOLD": 0.02, "POSTMORTEM_DUE_DAYS": 2}
    with time_machine.travel(T0, tick=False):
        incident = incident_of(3, other_leads=97)  # 3% >= 2%
        resolved = resolve(incident, ops_person)

    assert resolved.postmortem_required and resolved.postmortem_due_at == T0 + dt.timedelta(days=2)


def test_an_incident_that_resolves_itself_with_its_last_item_is_measured_too(ops_person):
    with time_machine.travel(T0, tick=False):
        incident = incident_of(3)
        for item in incident.items.all():
            exception_resolve(item=item, by=ops_person, resolution=Resolution.FIXED_UPSTREAM, note="replayed")

    incident.refresh_from_db()
    assert incident.status == ExceptionStatus.RESOLVED
    assert incident.postmortem_required and incident.affected_share == pytest.approx(1.0)


# --- owner -------------------------------------------------------------------------------------------------


def test_the_owner_is_whoever_the_incident_is_assigned_to(ops_person):
    with time_machine.travel(T0, tick=False):
        incident = incident_of(3)
        MembershipFactory(queue=incident.queue, user=ops_person)
        assigned, _ = incident_assign(incident=incident, to=ops_person, by=ops_person)

    assert assigned.owner == ops_person


# --- writing -----------------------------------------------------------------------------------------------


def test_writing_the_postmortem_clears_postmortem_due_and_is_audited(ops_person):
    with time_machine.travel(T0, tick=False):
        incident = resolve(incident_of(6), ops_person)
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        written = incident_postmortem_write(incident=incident, text=WRITTEN, by=ops_person)

    assert not written.postmortem_due
    assert (written.postmortem, written.postmortem_written_by, written.postmortem_written_at) == (
        WRITTEN,
        ops_person,
        T0 + dt.timedelta(days=1),
    )
    event = AuditEvent.objects.get(action=AuditAction.INCIDENT_POSTMORTEM)
    assert (event.incident_id, event.outcome, event.data["late"]) == (incident.pk, "written", False)


def test_a_revised_postmortem_keeps_the_text_it_replaced_in_the_audit_trail(ops_person):
    with time_machine.travel(T0, tick=False):
        incident = resolve(incident_of(6), ops_person)
        written = incident_postmortem_write(incident=incident, text=WRITTEN, by=ops_person)
        revised = WRITTEN + " Revised after the review."
        incident_postmortem_write(incident=written, text=revised, by=ops_person)

    first, second = AuditEvent.objects.filter(action=AuditAction.INCIDENT_POSTMORTEM).order_by("pk")
    assert "previous" not in first.data
    assert (second.outcome, second.data["previous"]) == ("revised", WRITTEN)


def test_a_postmortem_written_after_its_due_time_is_recorded_as_late(ops_person):
    with time_machine.travel(T0, tick=False):
        incident = resolve(incident_of(6), ops_person)
    with time_machine.travel(T0 + dt.timedelta(days=6), tick=False):
        incident_postmortem_write(incident=incident, text=WRITTEN, by=ops_person)

    assert AuditEvent.objects.get(action=AuditAction.INCIDENT_POSTMORTEM).data["late"] is True


def test_a_postmortem_of_an_unresolved_incident_is_refused(ops_person):
    incident = incident_of(3)

    with pytest.raises(PostmortemRefused, match="resolve it first"):
        incident_postmortem_write(incident=incident, text=WRITTEN, by=ops_person)


def test_a_one_word_postmortem_is_refused(ops_person):
    incident = resolve(incident_of(3), ops_person)

    with pytest.raises(PostmortemRefused, match="at least 40 characters"):
        incident_postmortem_write(incident=incident, text="fixed", by=ops_person)
    assert ExceptionIncident.objects.get(pk=incident.pk).postmortem_due


# --- the console -------------------------------------------------------------------------------------------


def test_the_incident_list_shows_postmortems_due_and_overdue(ops_client, ops_person):
    with time_machine.travel(T0, tick=False):
        incident = resolve(incident_of(6), ops_person)
    with time_machine.travel(T0 + dt.timedelta(days=6), tick=False):
        html = ops_client.get("/console/incidents/").content.decode()

    section = html[html.index('id="postmortems-due"') :]
    assert f'href="/console/incidents/{incident.pk}/#postmortem">{incident.pk}</a>' in section
    assert "overdue" in section


def test_the_incident_page_says_the_postmortem_is_due_and_why(ops_client, ops_person):
    with time_machine.travel(T0, tick=False):
        incident = resolve(incident_of(6, other_leads=14), ops_person)
        html = ops_client.get(f"/console/incidents/{incident.pk}/").content.decode()

    assert 'id="postmortem-due"' in html
    assert "were 30% of the leads captured on the days it spanned (postmortem from 5%)" in html
    assert 'id="incident-postmortem"' in html and 'id="incident-owner"' in html


def test_a_refused_postmortem_is_a_400_that_keeps_what_was_written(ops_client, ops_person):
    incident = resolve(incident_of(6), ops_person)

    response = ops_client.post(f"/console/incidents/{incident.pk}/postmortem/", {"postmortem": "it broke"})

    assert response.status_code == 400
    assert any("at least 40 characters" in str(m) for m in get_messages(response.wsgi_request))
    assert "it broke</textarea>" in response.content.decode()


def test_a_postmortem_written_in_the_console_leaves_the_due_list(ops_client, ops_person):
    incident = resolve(incident_of(6), ops_person)

    response = ops_client.post(f"/console/incidents/{incident.pk}/postmortem/", {"postmortem": WRITTEN})

    assert response.status_code == 302
    assert 'id="postmortems-due"' not in ops_client.get("/console/incidents/").content.decode()
    assert WRITTEN in ops_client.get(f"/console/incidents/{incident.pk}/").content.decode()


def test_a_threshold_given_as_a_percent_fails_the_system_check(settings):
    settings.HANDOFF = {**settings.HANDOFF, "POSTMORTEM_THRESHOLD": 5}
    (error,) = postmortem_threshold_check()
    assert error.id == "exceptions.E002" and "0.05 for 5%" in error.hint

    settings.HANDOFF = {**settings.HANDOFF, "POSTMORTEM_THRESHOLD": 0.05}
    assert postmortem_threshold_check() == []
