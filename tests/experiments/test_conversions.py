"""The attribution upload marks our leads converted when the CRM has them at a converted stage
(routing/reports/attribution.py conversions_stamp), for the experiments' conversion figures."""

import datetime as dt
import io

import pytest
from django.utils import timezone

from routing.models import Lead
from routing.reports.attribution import attribution_reconcile
from tests.factories import LeadFactory, SourceFactory

pytestmark = pytest.mark.django_db


def _upload(rows: str, **period):
    content = ("lead_id,origin,owner,stage\n" + rows).encode()
    return attribution_reconcile(file=io.BytesIO(content), name="crm.csv", by=None, **period)


def test_leads_at_a_converted_stage_are_stamped_once(settings):
    settings.HANDOFF = {**settings.HANDOFF, "CONVERTED_STAGES": ["converted", "closed won", "won"]}
    web = SourceFactory(name="Web-Form")
    open_deal, earlier = (LeadFactory(origin=web, lead_id=name) for name in ("w3", "w4"))
    for won in ("w1", "w2"):
        LeadFactory(origin=web, lead_id=won)
    stamped_before = timezone.now() - dt.timedelta(days=3)
    Lead.objects.filter(pk=earlier.pk).update(converted_at=stamped_before)
    LeadFactory(origin=web, lead_id="w5", received_at=timezone.now() - dt.timedelta(days=60))

    report = _upload(
        "w1,web-form,alan,Won\nw2,web-form,alan, Closed Won \nw3,web-form,alan,Negotiation\n"
        "w4,web-form,alan,won\nw5,web-form,alan,converted\nghost,web-form,alan,won\n"
    )

    assert report.data["conversions"] == {"stages": ["closed won", "converted", "won"], "rows": 5, "stamped": 3}
    converted = dict(Lead.objects.filter(converted_at__isnull=False).values_list("lead_id", "converted_at"))
    assert set(converted) == {"w1", "w2", "w4", "w5"}  # outside the period too: a conversion is a conversion
    assert converted["w1"] == converted["w2"] == report.created_at
    assert converted["w4"] == stamped_before  # the first upload that saw it converted
    assert Lead.objects.get(pk=open_deal.pk).converted_at is None

    again = _upload("w1,web-form,alan,won\n")
    assert again.data["conversions"]["stamped"] == 0


def test_the_converted_stages_are_a_setting(settings):
    settings.HANDOFF = {**settings.HANDOFF, "CONVERTED_STAGES": ["signed"]}
    LeadFactory(origin=SourceFactory(name="web-form"), lead_id="s1")
    report = _upload("s1,web-form,alan,won\n")
    assert report.data["conversions"]["stamped"] == 0
    report = _upload("s1,web-form,alan,SIGNED\n")
    assert report.data["conversions"]["stamped"] == 1
