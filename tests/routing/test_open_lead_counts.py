"""Open leads per person (caps and least-loaded) are kept by the database on every change to a lead, whoever
makes it, and read from a few rows however many leads a person was ever given."""

from collections import Counter

import pytest
from django.db import connection

from routing.assignment import open_lead_counts, open_lead_counts_fold
from routing.models import Lead, LeadStatus, OpenLeadCount
from routing.tasks import fold_open_lead_counts
from tests.factories import LeadFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db


def counted_from_the_leads(people) -> dict[int, int]:
    leads = Lead.objects.filter(status=LeadStatus.ASSIGNED, assignee__in=people)
    return dict(Counter(leads.values_list("assignee_id", flat=True)))


def test_open_lead_counts_follow_every_way_a_lead_changes_hands():
    ada, bob, cy = people = UserFactory.create_batch(3)
    ids = [p.pk for p in people]
    LeadFactory.create_batch(4, assignee=ada, status=LeadStatus.ASSIGNED)
    LeadFactory.create_batch(2, assignee=bob, status=LeadStatus.ASSIGNED)
    waiting = LeadFactory.create_batch(3)
    assert open_lead_counts(ids) == counted_from_the_leads(people) == {ada.pk: 4, bob.pk: 2}

    # A batch routed in one statement; a lead reassigned alone; one sent to an exception; one erased.
    Lead.objects.filter(pk__in=[lead.pk for lead in waiting]).update(status=LeadStatus.ASSIGNED, assignee=cy)
    moved = Lead.objects.filter(assignee=ada).first()
    moved.assignee = bob
    moved.save()
    to_exception = Lead.objects.filter(assignee=bob).order_by("pk").first()
    Lead.objects.filter(pk=to_exception.pk).update(status=LeadStatus.EXCEPTION)
    Lead.objects.filter(assignee=cy).order_by("pk").first().delete()
    assert open_lead_counts(ids) == counted_from_the_leads(people) == {ada.pk: 3, bob.pk: 2, cy.pk: 2}

    # Raw SQL too (a migration, a bulk fix by hand): the trigger sees every statement.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE routing_lead SET assignee_id = %s WHERE assignee_id = %s", [ada.pk, cy.pk])
    assert open_lead_counts(ids) == counted_from_the_leads(people) == {ada.pk: 5, bob.pk: 2}


def test_a_statement_records_one_change_per_person_not_one_per_lead():
    ada, bob = UserFactory.create_batch(2)
    origin = SourceFactory()
    Lead.objects.bulk_create(
        LeadFactory.build(origin=origin, assignee=ada if n % 3 else bob, status=LeadStatus.ASSIGNED)
        for n in range(3000)
    )
    assert OpenLeadCount.objects.filter(assignee_id__in=[ada.pk, bob.pk]).count() == 2
    assert open_lead_counts([ada.pk, bob.pk]) == {ada.pk: 2000, bob.pk: 1000}


def test_folding_leaves_one_row_per_person_and_the_same_counts():
    ada, bob, cy = people = UserFactory.create_batch(3)
    ids = [p.pk for p in people]
    for person, n in ((ada, 3), (bob, 2), (cy, 1)):
        LeadFactory.create_batch(n, assignee=person, status=LeadStatus.ASSIGNED)
    Lead.objects.filter(assignee=cy).update(status=LeadStatus.EXCEPTION)  # cy's count is back to 0
    before = open_lead_counts(ids)
    rows = OpenLeadCount.objects.filter(assignee_id__in=ids).count()
    assert rows == 7

    folded = fold_open_lead_counts()

    assert folded == rows - 2
    assert open_lead_counts(ids) == before == {ada.pk: 3, bob.pk: 2}
    assert sorted(OpenLeadCount.objects.values_list("assignee_id", "change")) == [(ada.pk, 3), (bob.pk, 2)]
    assert open_lead_counts_fold() == 0
