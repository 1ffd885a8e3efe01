"""Reconciliation incidents (a parity gap): an owner, and the postmortem a large one needs once resolved. The size
is the worst discrepancy of the report that opened it; from HANDOFF_POSTMORTEM_THRESHOLD a postmortem is due
HANDOFF_POSTMORTEM_DUE_DAYS after resolving (never blocking it), overdue after that, until one is written."""

import datetime as dt

import factory
import pytest
import time_machine
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.test import Client

from audit.models import AuditAction, AuditEvent
from exceptions.postmortems import PostmortemRefused, incident_postmortem_write
from exceptions.root_cause import root_cause_report, root_cause_text
from exceptions.services import InvalidAction
from routing.reports.incidents import incident_acknowledge, incident_owner_assign, incident_resolve
from routing.reports.models import Incident, IncidentStatus, ReconciliationReport, ReportKind
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.UTC)
WRITTEN = "The CRM webhook dropped 12% of assignments after a certificate expired; we now alert on its age."


class ParityReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReconciliationReport

    kind = ReportKind.PARITY
    period_start = factory.LazyFunction(lambda: T0.replace(hour=0) - dt.timedelta(days=1))
    period_end = factory.LazyAttribute(lambda r: r.period_start + dt.timedelta(days=1))
    created_at = T0
    variance = 0.12
    flagged = True
    data = factory.LazyAttribute(lambda r: {"threshold": 0.01, "gaps": ["web → CRM: 88 of 100 delivered"]})


class ParityIncidentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Incident

    report = factory.SubFactory(ParityReportFactory)
    title = "Parity gap on 2026-03-09: 1 discrepancy"
    detail = "web → CRM: 88 of 100 assigned leads delivered"
    opened_at = T0


def incident_of(variance: float) -> Incident:
    return ParityIncidentFactory(report=ParityReportFactory(variance=variance))


def resolved_at(incident: Incident, by, at: dt.datetime = T0) -> Incident:
    with time_machine.travel(at, tick=False):
        return incident_resolve(incident=incident, by=by, note="Certificate renewed; the day replayed.")


@pytest.fixture
def ops_client(ops_person):
    client = Client()
    client.force_login(ops_person)
    return client


def shown(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- size and due state ------------------------------------------------------------------------------------


def test_a_report_variance_at_the_threshold_needs_a_postmortem_due_days_after_resolving(ops_person):
    resolved = resolved_at(incident_of(0.05), ops_person, T0 + dt.timedelta(hours=3))

    assert resolved.status == IncidentStatus.RESOLVED  # resolving is never held up by the postmortem
    assert resolved.affected_share == pytest.approx(0.05)
    assert resolved.postmortem_required and resolved.postmortem_due
    assert resolved.postmortem_due_at == T0 + dt.timedelta(hours=3, days=5)
    resolution = AuditEvent.objects.get(action=AuditAction.INCIDENT_RESOLVED)
    assert resolution.data["postmortem_required"] is True


def test_a_variance_under_the_threshold_needs_no_postmortem(ops_person):
    resolved = resolved_at(incident_of(0.049), ops_person)

    assert (resolved.postmortem_required, resolved.postmortem_due, resolved.postmortem_due_at) == (False, False, None)
    assert resolved.affected_share == pytest.approx(0.049)


def test_the_threshold_and_due_days_come_from_the_settings(ops_person, settings):
    settings.HANDOFF = {**settings.HANDOFF, "POSTMORTEM_THRESHOLD": 0.02, "POSTMORTEM_DUE_DAYS": 2}

    resolved = resolved_at(incident_of(0.03), ops_person)

    assert resolved.postmortem_required and resolved.postmortem_due_at == T0 + dt.timedelta(days=2)


def test_an_open_incident_is_not_measured_and_owes_nothing():
    incident = incident_of(0.5)

    assert (incident.affected_share, incident.postmortem_required, incident.postmortem_due) == (None, False, False)


def test_the_page_shows_due_then_overdue_until_a_postmortem_is_written(ops_person, ops_client):
    incident = resolved_at(incident_of(0.2), ops_person)

    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        page = ops_client.get(f"/console/reconciliation/incidents/{incident.pk}/").content.decode()
        listing = ops_client.get("/console/reconciliation/").content.decode()
    assert 'id="postmortem-due"' in page and "Postmortem due by 2026-03-15 10:00 UTC" in page
    assert "overdue" not in page
    assert 'id="postmortems-due"' in listing and "postmortem due" in listing

    with time_machine.travel(T0 + dt.timedelta(days=6), tick=False):
        page = ops_client.get(f"/console/reconciliation/incidents/{incident.pk}/").content.decode()
        listing = ops_client.get("/console/reconciliation/").content.decode()
    assert "overdue" in page and "overdue" in listing

    incident_postmortem_write(incident=incident, text=WRITTEN, by=ops_person)
    page = ops_client.get(f"/console/reconciliation/incidents/{incident.pk}/").content.decode()
    listing = ops_client.get("/console/reconciliation/").content.decode()
    assert 'id="postmortem-due"' not in page and 'id="postmortems-due"' not in listing
    assert "postmortem written" in listing


# --- owner -------------------------------------------------------------------------------------------------


def test_acknowledging_makes_the_acknowledger_owner_of_an_unowned_incident(ops_person):
    acknowledged = incident_acknowledge(incident=incident_of(0.2), by=ops_person)

    assert acknowledged.owner == ops_person


def test_acknowledging_keeps_an_owner_already_assigned(ops_person):
    owner = UserFactory(username="ada", is_superuser=True)
    incident = ParityIncidentFactory(owner=owner)

    assert incident_acknowledge(incident=incident, by=ops_person).owner == owner


def test_an_owner_is_assigned_from_the_console_and_audited(ops_person, ops_client):
    owner = UserFactory(username="oscar")
    owner.groups.add(Group.objects.get_or_create(name="ops")[0])
    incident = resolved_at(incident_of(0.2), ops_person)  # a resolved incident's owner writes its postmortem

    response = ops_client.post(f"/console/reconciliation/incidents/{incident.pk}/assign/", {"owner": owner.pk})

    assert response.status_code == 302 and response.url == f"/console/reconciliation/incidents/{incident.pk}/"
    assert Incident.objects.get(pk=incident.pk).owner == owner
    assert shown(response) == [f"Incident #{incident.pk} is owned by oscar."]
    event = AuditEvent.objects.get(action=AuditAction.INCIDENT_ACKNOWLEDGED, outcome="owner assigned")
    assert (event.actor, event.data["incident_id"], event.data["after"]) == (ops_person, incident.pk, "oscar")


def test_only_ops_people_and_admins_may_own_an_incident(ops_person, rule_owner, ops_client):
    incident = incident_of(0.2)

    with pytest.raises(InvalidAction, match="cannot own an incident"):
        incident_owner_assign(incident=incident, to=rule_owner, by=ops_person)
    response = ops_client.post(f"/console/reconciliation/incidents/{incident.pk}/assign/", {"owner": rule_owner.pk})

    assert "Nothing was changed" in shown(response)[0]
    assert Incident.objects.get(pk=incident.pk).owner is None
    admin = UserFactory(username="ada", is_superuser=True)
    assert incident_owner_assign(incident=incident, to=admin, by=ops_person).owner == admin


# --- the postmortem form -----------------------------------------------------------------------------------


def test_the_form_writes_the_postmortem_with_its_audit_event(ops_person, ops_client):
    incident = resolved_at(incident_of(0.2), ops_person)

    with time_machine.travel(T0 + dt.timedelta(days=7), tick=False):  # past its due time: late
        response = ops_client.post(
            f"/console/reconciliation/incidents/{incident.pk}/postmortem/", {"postmortem": WRITTEN}
        )

    assert response.status_code == 302
    assert shown(response) == [f"Postmortem of incident #{incident.pk} saved."]
    stored = Incident.objects.get(pk=incident.pk)
    assert (stored.postmortem, stored.postmortem_written_by, stored.postmortem_due) == (WRITTEN, ops_person, False)
    event = AuditEvent.objects.get(action=AuditAction.INCIDENT_POSTMORTEM)
    assert (event.actor, event.outcome, event.incident_id) == (ops_person, "written", None)
    assert event.data == {
        "required": True,
        "late": True,
        "chars": len(WRITTEN),
        "incident_id": incident.pk,
        "kind": "reconciliation",
    }

    ops_client.post(f"/console/reconciliation/incidents/{incident.pk}/postmortem/", {"postmortem": WRITTEN + " Ok."})
    assert AuditEvent.objects.filter(action=AuditAction.INCIDENT_POSTMORTEM, outcome="revised").count() == 1


def test_a_short_postmortem_is_refused_keeping_what_was_written(ops_person, ops_client):
    incident = resolved_at(incident_of(0.2), ops_person)

    response = ops_client.post(f"/console/reconciliation/incidents/{incident.pk}/postmortem/", {"postmortem": "fixed"})

    assert response.status_code == 400
    page = response.content.decode()
    assert "The postmortem was not saved: Write at least 40 characters" in page
    assert "fixed</textarea>" in page
    assert Incident.objects.get(pk=incident.pk).postmortem_written_at is None
    assert not AuditEvent.objects.filter(action=AuditAction.INCIDENT_POSTMORTEM).exists()


def test_an_unresolved_incident_takes_no_postmortem(ops_person):
    with pytest.raises(PostmortemRefused, match="resolve it first"):
        incident_postmortem_write(incident=incident_of(0.2), text=WRITTEN, by=ops_person)


def test_the_postmortem_form_needs_csrf(ops_person):
    incident = resolved_at(incident_of(0.2), ops_person)
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops_person)

    response = client.post(f"/console/reconciliation/incidents/{incident.pk}/postmortem/", {"postmortem": WRITTEN})

    assert response.status_code == 403
    assert Incident.objects.get(pk=incident.pk).postmortem_written_at is None


def test_outsiders_see_no_incident_and_write_no_postmortem(ops_person, outsider):
    incident = resolved_at(incident_of(0.2), ops_person)
    client = Client()
    client.force_login(outsider)

    assert client.get(f"/console/reconciliation/incidents/{incident.pk}/").status_code == 403
    posted = client.post(f"/console/reconciliation/incidents/{incident.pk}/postmortem/", {"postmortem": WRITTEN})
    assert posted.status_code == 403
    assert Client().get(f"/console/reconciliation/incidents/{incident.pk}/").status_code == 302  # to sign in
    assert Incident.objects.get(pk=incident.pk).postmortem_written_at is None


def test_the_postmortem_title_and_detail_are_escaped(ops_person, ops_client):
    incident = ParityIncidentFactory(title="<script>alert(1)</script>", detail="<b>gap</b>")
    incident = resolved_at(incident, ops_person)
    incident_postmortem_write(incident=incident, text="<img src=x onerror=alert(1)> " + WRITTEN, by=ops_person)

    page = ops_client.get(f"/console/reconciliation/incidents/{incident.pk}/").content.decode()

    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>gap</b>" not in page


# --- the monthly root-cause report -------------------------------------------------------------------------


def test_the_root_cause_report_lists_reconciliation_postmortems_still_owed(ops_person, ops_client):
    owed = resolved_at(incident_of(0.2), ops_person)
    incident_owner_assign(incident=owed, to=ops_person, by=ops_person)
    written = resolved_at(incident_of(0.3), ops_person)
    incident_postmortem_write(incident=written, text=WRITTEN, by=ops_person)
    resolved_at(incident_of(0.01), ops_person)  # too small to owe one

    report = root_cause_report(month=T0.date())

    assert [i.pk for i in report.reconciliation_postmortems_due] == [owed.pk]
    assert f"reconciliation #{owed.pk} {owed.title} (olga)" in root_cause_text(report)
    page = ops_client.get("/console/root-causes/?month=2026-03").content.decode()
    assert f'href="/console/reconciliation/incidents/{owed.pk}/#postmortem"' in page


def test_the_reconciliation_page_reads_owners_and_postmortems_due_in_bounded_queries(
    ops_person, ops_client, django_assert_max_num_queries
):
    for _ in range(2):
        resolved_at(incident_of(0.2), ops_person)
        ParityIncidentFactory(owner=ops_person)
    ops_client.get("/console/reconciliation/")  # the session and permission lookups, warmed

    with django_assert_max_num_queries(12) as first:
        ops_client.get("/console/reconciliation/")
    for _ in range(5):  # more incidents, same queries
        resolved_at(incident_of(0.2), ops_person)
        ParityIncidentFactory(owner=ops_person)
    with django_assert_max_num_queries(len(first.captured_queries)):
        ops_client.get("/console/reconciliation/")
