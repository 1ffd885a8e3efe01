"""routing/bulk.py writes rows as one JSON parameter; what it stores is what Django's bulk_create stores."""

import pytest
from django.utils import timezone

from routing.accounts.models import AccountMatch, MatchMethod
from routing.bulk import bulk_upsert
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

FIELDS = ["account", "method", "confidence", "why", "candidates", "account_view", "matched_at"]


def match(lead, **fields):
    defaults = {
        "method": MatchMethod.DOMAIN,
        "confidence": 0.9,
        "why": "jo@acme.example: domain acme.example",
        "candidates": [{"account_id": "A-1", "name": 'Ácme "Corp"'}],
        "account_view": {"id": "A-1", "tier": None, "nested": {"n": 1.5}},
        "matched_at": timezone.now(),
    }
    return AccountMatch(lead=lead, **{**defaults, **fields})


def stored(lead) -> dict:
    return AccountMatch.objects.filter(lead=lead).values(*FIELDS).get()


def test_bulk_upsert_stores_what_bulk_create_stores():
    by_django, by_us = LeadFactory.create_batch(2)
    AccountMatch.objects.bulk_create([match(by_django)])
    bulk_upsert([match(by_us)], unique_fields=["lead"], update_fields=FIELDS)
    assert {k: v for k, v in stored(by_us).items() if k != "matched_at"} == {
        k: v for k, v in stored(by_django).items() if k != "matched_at"
    }


def test_bulk_upsert_replaces_the_row_with_the_same_key_and_inserts_the_rest():
    known, new = LeadFactory.create_batch(2)
    (first,) = bulk_upsert([match(known)], unique_fields=["lead"], update_fields=FIELDS)

    again = bulk_upsert(
        [match(known, method=MatchMethod.NONE, confidence=0.0, why="", candidates=[]), match(new)],
        unique_fields=["lead"],
        update_fields=FIELDS,
    )

    assert again[0].pk == first.pk and again[1].pk != first.pk
    assert AccountMatch.objects.count() == 2
    assert stored(known) | {"matched_at": None} == {
        "account": None,
        "method": MatchMethod.NONE,
        "confidence": 0.0,
        "why": "",
        "candidates": [],
        "account_view": {"id": "A-1", "tier": None, "nested": {"n": 1.5}},
        "matched_at": None,
    }
