"""Weekly attribution reconciliation: a known CRM export with planted discrepancies gives exact counts and
lists; every kind of bad file gives its clear message and stores nothing; the command and the console agree."""

import csv
import datetime as dt
import io
from io import StringIO

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from routing.models import LeadStatus
from routing.reports.attribution import AttributionFileError, attribution_period, attribution_reconcile
from routing.reports.models import ReconciliationReport, ReportKind
from tests.factories import LeadFactory, SourceFactory, UserFactory

UTC = dt.UTC
SINCE = dt.datetime(2026, 5, 4, tzinfo=UTC)  # a Monday
UNTIL = dt.datetime(2026, 5, 11, tzinfo=UTC)
IN_PERIOD = dt.datetime(2026, 5, 6, 10, 0, tzinfo=UTC)

# The CRM's export: BOM, headers in another case and spelling, the optional columns. Planted: W-3, C-1 and C-4
# have another owner; C-2 and W-4 are missing; W-99, P-1 and chat/W-1 are unknown; W-0 came in the week before.
SAMPLE = (
    "\ufeffLead ID,Origin,OWNER,Stage,Amount\r\n"
    "W-1,web-form,alice,SQL,100\r\n"  # line 2: matched by username
    "W-2,web-form,BOB@Example.com,,\r\n"  # line 3: matched by email, ignoring case
    "W-3,web-form,bob,Won,1200.50\r\n"  # line 4: misrouted (ours alice)
    "C-1,chat,,MQL,\r\n"  # line 5: misrouted (the CRM has no owner, ours carol)
    "C-4,chat,alice,,300\r\n"  # line 6: misrouted (never assigned here)
    "W-5,WEB-FORM,alice,,\r\n"  # line 7: matched (origin ignoring case)
    "W-0,web-form,alice,,\r\n"  # line 8: received before the period
    "\r\n"  # line 9: blank, skipped
    "W-99,web-form,dave,Lost,99.99\r\n"  # line 10: unknown to us
    "P-1,partner-site,alice,,\r\n"  # line 11: unknown (origin we do not have)
    "W-1,chat,alice,,\r\n"  # line 12: unknown (the lead id exists, from another origin)
).encode()


@pytest.fixture
def people(db):
    return {name: UserFactory(username=name, email=f"{name}@example.com") for name in ("alice", "bob", "carol")}


@pytest.fixture
def sample_leads(people):
    web, chat = SourceFactory(name="web-form"), SourceFactory(name="chat")

    def lead(origin, lead_id, owner=None, received_at=IN_PERIOD, status=LeadStatus.ASSIGNED):
        return LeadFactory(
            origin=origin,
            lead_id=lead_id,
            assignee=people[owner] if owner else None,
            status=status if owner else LeadStatus.EXCEPTION,
            received_at=received_at,
        )

    return {
        "W-1": lead(web, "W-1", "alice"),
        "W-2": lead(web, "W-2", "bob"),
        "W-3": lead(web, "W-3", "alice"),
        "C-1": lead(chat, "C-1", "carol"),
        "C-2": lead(chat, "C-2", "bob"),
        "W-4": lead(web, "W-4", "carol", received_at=UNTIL - dt.timedelta(seconds=1)),
        "C-3": lead(chat, "C-3"),  # in an exception, never assigned, not in the CRM
        "C-4": LeadFactory(origin=chat, lead_id="C-4", status=LeadStatus.RECEIVED, received_at=SINCE),
        "W-5": lead(web, "W-5", "alice"),
        "W-0": lead(web, "W-0", "alice", received_at=SINCE - dt.timedelta(seconds=1)),
        "W-6": lead(web, "W-6", "bob", received_at=UNTIL),  # after the period, not in the CRM: not counted
    }


def reconcile(content: bytes, *, by=None, name="crm.csv"):
    return attribution_reconcile(file=io.BytesIO(content), name=name, by=by, since=SINCE, until=UNTIL)


def test_a_known_sample_gives_the_exact_counts_and_lists(sample_leads):
    leads = sample_leads
    report = reconcile(SAMPLE)
    report.refresh_from_db()
    data = report.data

    assert data["totals"] == {
        "crm_rows": 10,
        "our_leads": 9,
        "matched": 3,
        "misrouted": 3,
        "missing_in_crm": 2,
        "unknown_to_us": 3,
        "outside_period": 1,
        "unassigned_here": 1,
    }
    assert data["misrouted"] == [
        {"pk": leads["C-1"].pk, "lead_id": "C-1", "origin": "chat", "ours": "carol", "crm": "", "line": 5,
         "stage": "MQL", "amount": None},
        {"pk": leads["C-4"].pk, "lead_id": "C-4", "origin": "chat", "ours": None, "crm": "alice", "line": 6,
         "stage": "", "amount": "300"},
        {"pk": leads["W-3"].pk, "lead_id": "W-3", "origin": "web-form", "ours": "alice", "crm": "bob", "line": 4,
         "stage": "Won", "amount": "1200.50"},
    ]  # fmt: skip
    assert data["missing_in_crm"] == [
        {"pk": leads["C-2"].pk, "lead_id": "C-2", "origin": "chat", "ours": "bob",
         "received_at": "2026-05-06T10:00:00+00:00"},
        {"pk": leads["W-4"].pk, "lead_id": "W-4", "origin": "web-form", "ours": "carol",
         "received_at": "2026-05-10T23:59:59+00:00"},
    ]  # fmt: skip
    assert data["unknown_to_us"] == [
        {"lead_id": "W-1", "origin": "chat", "crm": "alice", "line": 12, "stage": "", "amount": None},
        {"lead_id": "P-1", "origin": "partner-site", "crm": "alice", "line": 11, "stage": "", "amount": None},
        {"lead_id": "W-99", "origin": "web-form", "crm": "dave", "line": 10, "stage": "Lost", "amount": "99.99"},
    ]
    assert data["outside_period"] == [
        {"pk": leads["W-0"].pk, "lead_id": "W-0", "origin": "web-form", "ours": "alice", "crm": "alice", "line": 8,
         "stage": "", "amount": None, "received_at": "2026-05-03T23:59:59+00:00"},
    ]  # fmt: skip
    assert data["amounts"] == {"crm": "1700.49", "misrouted": "1500.50", "unknown_to_us": "99.99"}
    assert report.variance == pytest.approx(8 / 9)
    assert report.flagged is True
    assert report.kind == ReportKind.ATTRIBUTION
    assert (report.period_start, report.period_end) == (SINCE, UNTIL)
    assert report.source_name == "crm.csv"
    assert data["file"]["columns"] == ["lead_id", "origin", "owner", "stage", "amount"]
    assert data["file"]["bytes"] == len(SAMPLE)


def test_an_export_that_agrees_has_no_variance_and_is_not_flagged(people):
    web = SourceFactory(name="web-form")
    for n, owner in enumerate(["alice", "bob"]):
        LeadFactory(origin=web, lead_id=f"L-{n}", assignee=people[owner], status=LeadStatus.ASSIGNED,
                    received_at=IN_PERIOD)  # fmt: skip

    report = reconcile(b"lead_id,origin,owner\nL-0,web-form,alice\nL-1,web-form,bob@example.com\n")

    assert report.data["totals"] == {
        "crm_rows": 2, "our_leads": 2, "matched": 2, "misrouted": 0, "missing_in_crm": 0, "unknown_to_us": 0,
        "outside_period": 0, "unassigned_here": 0,
    }  # fmt: skip
    assert (report.variance, report.flagged) == (0.0, False)
    assert "amounts" not in report.data


def test_a_variance_at_the_threshold_is_not_flagged_and_above_it_is(people, settings):
    web = SourceFactory(name="web-form")
    for n in range(100):
        LeadFactory(origin=web, lead_id=f"L-{n}", assignee=people["alice"], status=LeadStatus.ASSIGNED,
                    received_at=IN_PERIOD)  # fmt: skip
    rows = "".join(f"L-{n},web-form,alice\n" for n in range(99))  # L-99 missing: 1 of 100

    at_threshold = reconcile(f"lead_id,origin,owner\n{rows}".encode())
    above = reconcile(f"lead_id,origin,owner\n{rows}X-1,web-form,alice\n".encode())

    assert (at_threshold.variance, at_threshold.flagged) == (0.01, False)
    assert (above.variance, above.flagged) == (0.02, True)
    settings.HANDOFF = {**settings.HANDOFF, "PARITY_THRESHOLD": 0.001}
    assert reconcile(f"lead_id,origin,owner\n{rows}".encode()).flagged is True


def test_semicolons_and_tabs_are_accepted_as_delimiters(sample_leads):
    for delimiter in (";", "\t"):
        content = f"lead_id{delimiter}origin{delimiter}owner\nW-1{delimiter}web-form{delimiter}alice\n".encode()
        report = reconcile(content)
        assert report.data["totals"]["matched"] == 1
        assert report.data["file"]["delimiter"] == delimiter


@time_machine.travel(dt.datetime(2026, 5, 20, 12, 0, tzinfo=UTC), tick=False)
def test_without_a_period_it_takes_the_seven_days_up_to_now(people):
    web = SourceFactory(name="web-form")
    now = dt.datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
    LeadFactory(origin=web, lead_id="new", assignee=people["alice"], status=LeadStatus.ASSIGNED,
                received_at=now - dt.timedelta(days=6, hours=23))  # fmt: skip
    old = LeadFactory(origin=web, lead_id="old", assignee=people["alice"], status=LeadStatus.ASSIGNED,
                      received_at=now - dt.timedelta(days=7, seconds=1))  # fmt: skip

    report = attribution_reconcile(
        file=io.BytesIO(b"lead_id,origin,owner\nnew,web-form,alice\nold,web-form,alice\n"), name="x.csv", by=None
    )

    assert (report.period_start, report.period_end) == (now - dt.timedelta(days=7), now)
    assert report.data["totals"]["matched"] == 1
    assert [e["pk"] for e in report.data["outside_period"]] == [old.pk]


def test_typed_days_cover_whole_days_with_until_inclusive():
    since, until = attribution_period(since=dt.date(2026, 5, 4), until=dt.date(2026, 5, 10))
    assert (since, until) == (SINCE, UNTIL)
    with pytest.raises(ValueError, match="The period is empty"):
        attribution_period(since=dt.date(2026, 5, 11), until=dt.date(2026, 5, 10))


# Bad files ---------------------------------------------------------------------------------------------------

HEADER = b"lead_id,origin,owner\n"
BAD_FILES = {
    "not-utf8": (
        HEADER + b"W-1,web-form,Jos\xe9\n",
        "The file is not UTF-8 text: byte 0xE9 at byte offset 37 (line 2) cannot be decoded. Export the CSV as "
        "UTF-8 ('CSV UTF-8' in Excel) and upload it again.",
    ),
    "utf16": (
        "lead_id,origin,owner\nW-1,web-form,alice\n".encode("utf-16"),
        "The file is UTF-16 text, not UTF-8. Export the CSV as UTF-8 ('CSV UTF-8').",
    ),
    "nul-bytes": (
        "lead_id,origin,owner\n".encode("utf-16-le"),
        "The file is not UTF-8 text: a NUL byte at byte offset 1 (line 1) (UTF-16 or a binary file?). "
        "Export the CSV as UTF-8 ('CSV UTF-8').",
    ),
    "spreadsheet": (
        b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 20,
        "This is a spreadsheet (or zip) file, not CSV text. Save or export it as 'CSV UTF-8' and upload that.",
    ),
    "empty": (b"", "The file is empty: expected a header line with lead_id, origin, owner and a row per lead."),
    "only-a-bom-and-blank-lines": (
        b"\xef\xbb\xbf\r\n\r\n",
        "The file is empty: expected a header line with lead_id, origin, owner and a row per lead.",
    ),
    "missing-column": (
        b"Lead ID,origin,crm_owner,stage\nW-1,web-form,alice,SQL\n",
        "Missing column: owner. Columns found: 'Lead ID', 'origin', 'crm_owner', 'stage'. "
        "Required: lead_id, origin, owner; optional: stage, amount.",
    ),
    "missing-columns": (
        b"id,source\nW-1,web-form\n",
        "Missing columns: lead_id, origin, owner. Columns found: 'id', 'source'. "
        "Required: lead_id, origin, owner; optional: stage, amount.",
    ),
    "column-twice": (b"lead_id,origin,owner,Owner\nW-1,web-form,a,b\n", "Column named twice: owner."),
    "malformed-rows": (
        HEADER + b"W-1,web-form\nW-2,web-form,alice\n,web-form,bob\nW-3, ,bob\nW-4,web-form,bob,extra\n",
        "4 malformed rows: line 2: 2 fields where the header has 3; line 4: lead_id is empty; "
        "line 5: origin is empty; line 6: 4 fields where the header has 3. "
        "Fix them in the export and upload it again.",
    ),
    "bad-amount": (
        b'lead_id,origin,owner,amount\nW-1,web-form,alice,"1,200.00"\nW-2,web-form,alice,NaN\n',
        "2 malformed rows: line 2: amount '1,200.00' is not a number (digits and a decimal point, e.g. 1234.50); "
        "line 3: amount 'NaN' is not a number (digits and a decimal point, e.g. 1234.50). "
        "Fix them in the export and upload it again.",
    ),
    "unbalanced-quote": (
        HEADER + b'W-1,web-form,alice\nW-2,"web-form,alice\n',
        'Line 3: the CSV cannot be parsed (unexpected end of data). Check for an unbalanced quote (") there.',
    ),
    "duplicates": (
        HEADER + b"W-1,web-form,alice\nW-2,web-form,bob\nW-1,Web-Form,bob\nW-2,web-form,bob\nW-1,chat,bob\n",
        "2 duplicate rows for one lead: line 4 repeats line 2 (origin 'Web-Form', lead_id 'W-1'); "
        "line 5 repeats line 3 (origin 'web-form', lead_id 'W-2'). Each (origin, lead_id) must appear once.",
    ),
}


@pytest.mark.parametrize("content, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_gives_its_clear_message_and_stores_nothing(db, content, message):
    with pytest.raises(AttributionFileError) as error:
        reconcile(content)

    assert error.value.message == message
    assert not ReconciliationReport.objects.exists()


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(db, settings):
    settings.HANDOFF = {**settings.HANDOFF, "ATTRIBUTION_MAX_BYTES": 64}

    with pytest.raises(AttributionFileError) as error:
        reconcile(HEADER + b"W-1,web-form,alice\n" * 4)

    assert error.value.message == (
        "The file is 97 bytes; the limit for a CRM export is 64 bytes. Export a shorter period and upload it again."
    )
    fits = HEADER + b"W-1,web-form,alice\nW-2,web-form,alice\n"  # 59 bytes
    assert reconcile(fits).data["totals"]["crm_rows"] == 2


def test_a_stream_over_the_size_limit_is_refused_without_reading_past_it(db, settings):
    settings.HANDOFF = {**settings.HANDOFF, "ATTRIBUTION_MAX_BYTES": 64}

    class Unsized(io.RawIOBase):  # a pipe: no size, cannot seek
        def __init__(self):
            self.served = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            self.served += len(buffer)
            buffer[:] = b"x" * len(buffer)
            return len(buffer)

    stream = Unsized()
    with pytest.raises(AttributionFileError, match=r"^The file is too large; the limit for a CRM export is 64 bytes"):
        attribution_reconcile(file=io.BufferedReader(stream), name="pipe", by=None, since=SINCE, until=UNTIL)
    assert stream.served < 10_000


def test_too_many_rows_are_refused(db, settings):
    settings.HANDOFF = {**settings.HANDOFF, "ATTRIBUTION_MAX_ROWS": 3}
    rows = b"".join(b"W-%d,web-form,alice\n" % n for n in range(3))

    assert reconcile(HEADER + rows + b"\n\n").data["totals"]["crm_rows"] == 3  # blank lines are no rows
    with pytest.raises(AttributionFileError) as error:
        reconcile(HEADER + rows + b"W-3,web-form,alice\n")
    assert error.value.message == (
        "The file has more than 3 rows (line 5 is past the limit). Export a shorter period and upload it again."
    )


def test_a_header_without_rows_reports_every_assigned_lead_missing(sample_leads):
    report = reconcile(b"lead_id,origin,owner\n")

    assert report.data["totals"]["crm_rows"] == 0
    assert report.data["totals"]["missing_in_crm"] == 7
    assert report.data["totals"]["unassigned_here"] == 2
    assert report.flagged is True


# The command -------------------------------------------------------------------------------------------------


def test_the_command_stores_the_report_and_prints_totals_and_lists(sample_leads, tmp_path):
    path = tmp_path / "crm-week-19.csv"
    path.write_bytes(SAMPLE)
    out = StringIO()

    call_command("reconcile_attribution", str(path), "--since", "2026-05-04", "--until", "2026-05-10", stdout=out)

    report = ReconciliationReport.objects.get()
    assert (report.period_start, report.period_end, report.created_by) == (SINCE, UNTIL, None)
    lines = out.getvalue().splitlines()
    leads = sample_leads
    assert lines == [
        f"Attribution report #{report.pk}: crm-week-19.csv, leads received 2026-05-04 00:00 to 2026-05-11 00:00 (UTC)",
        "CRM rows 10, our leads 9: matched 3, misrouted 3, missing in CRM 2, unknown to us 3; "
        "outside the period 1, never assigned here 1",
        "Amounts: CRM 1700.49, misrouted 1500.50, unknown to us 99.99",
        "Variance 88.89% (threshold 1.00%): FLAGGED",
        "Misrouted (the CRM owner differs from our assignee) (3):",
        f"  chat C-1 (#{leads['C-1'].pk}): ours carol, CRM — [line 5]",
        f"  chat C-4 (#{leads['C-4'].pk}): ours —, CRM alice [line 6]",
        f"  web-form W-3 (#{leads['W-3'].pk}): ours alice, CRM bob [line 4]",
        "Missing in the CRM (we assigned them) (2):",
        f"  chat C-2 (#{leads['C-2'].pk}): ours bob",
        f"  web-form W-4 (#{leads['W-4'].pk}): ours carol",
        "Unknown to us (the CRM has them, we never saw them) (3):",
        "  chat W-1: CRM alice [line 12]",
        "  partner-site P-1: CRM alice [line 11]",
        "  web-form W-99: CRM dave [line 10]",
        "Received outside the period (not counted) (1):",
        f"  web-form W-0 (#{leads['W-0'].pk}): ours alice, CRM alice [line 8]",
    ]


def test_the_command_records_who_ran_it(sample_leads, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_bytes(SAMPLE)

    call_command("reconcile_attribution", str(path), "--by", "alice", stdout=StringIO())

    assert ReconciliationReport.objects.get().created_by == sample_leads["W-1"].assignee


def test_the_command_refuses_a_bad_file_with_the_clear_message(db, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(b"id,source\nW-1,web-form\n")

    with pytest.raises(CommandError, match=r"^export.csv: Missing columns: lead_id, origin, owner\. Columns found"):
        call_command("reconcile_attribution", str(path), stdout=StringIO())
    with pytest.raises(CommandError, match=r"^Cannot read .*nothing.csv: No such file or directory\.$"):
        call_command("reconcile_attribution", str(tmp_path / "nothing.csv"), stdout=StringIO())
    with pytest.raises(CommandError, match=r"^The period is empty"):
        call_command("reconcile_attribution", str(path), "--since", "2026-05-11", "--until", "2026-05-10")
    with pytest.raises(
        CommandError, match=r"'last week' is not a date \(YYYY-MM-DD, its whole UTC day\) or a date-time"
    ):
        call_command("reconcile_attribution", str(path), "--since", "last week")
    assert not ReconciliationReport.objects.exists()


# The console -------------------------------------------------------------------------------------------------

UPLOAD = "/console/reconciliation/attribution/"


def upload(client, content: bytes, name="crm.csv", **fields):
    return client.post(
        reverse("console:attribution"),
        {"file": SimpleUploadedFile(name, content, content_type="text/csv"), **fields},
    )


def test_the_console_urls_are_where_the_console_expects_them():
    assert reverse("console:attribution") == UPLOAD
    assert reverse("console:attribution-report", args=[7]) == f"{UPLOAD}7/"


@pytest.mark.parametrize("persona", ["ops_person", "rule_owner"])
def test_console_users_upload_an_export_and_read_the_report(client, sample_leads, persona, request):
    person = request.getfixturevalue(persona)
    client.force_login(person)

    response = upload(client, SAMPLE, name="week-19.csv", since="2026-05-04", until="2026-05-10")

    report = ReconciliationReport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("console:attribution-report", args=[report.pk])
    assert (report.created_by, report.source_name, report.period_start, report.period_end) == (
        person, "week-19.csv", SINCE, UNTIL,
    )  # fmt: skip
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "Reconciled 10 CRM rows with 9 leads: variance 88.9%, above the 1.0% threshold." in html
    for lead_id in ("W-3", "C-1", "C-4", "C-2", "W-4", "W-0"):
        pk = sample_leads[lead_id].pk
        assert f'<a href="{reverse("console:lead", args=[pk])}">{lead_id}</a>' in html
    for lead_id in ("W-99", "P-1"):
        assert f"<td>{lead_id}</td>" in html
    assert '<td class="num">10</td><td class="num">9</td><td class="num">3</td><td class="num">3</td>' in html


def test_a_bad_upload_shows_the_error_with_a_400_and_stores_nothing(client, ops_person):
    client.force_login(ops_person)

    response = upload(client, b"lead_id,origin,owner\nW-1,web-form,Jos\xe9\n")

    assert response.status_code == 400
    assert "The file is not UTF-8 text: byte 0xE9 at byte offset 37 (line 2)" in response.content.decode()
    assert not ReconciliationReport.objects.exists()


def test_an_empty_period_or_no_file_is_a_form_error(client, ops_person):
    client.force_login(ops_person)

    backwards = upload(client, HEADER, since="2026-05-11", until="2026-05-10")
    no_file = client.post(reverse("console:attribution"), {})

    assert backwards.status_code == 400
    assert "The period is empty" in backwards.content.decode()
    assert no_file.status_code == 400
    assert "This field is required." in no_file.content.decode()
    assert not ReconciliationReport.objects.exists()


def test_an_upload_over_the_limit_is_dropped_while_streaming_and_explained(client, ops_person, settings):
    settings.HANDOFF = {**settings.HANDOFF, "ATTRIBUTION_MAX_BYTES": 1024}
    client.force_login(ops_person)

    response = upload(client, HEADER + b"W-1,web-form,alice\n" * 200, since="2026-05-04")

    assert response.status_code == 400
    assert (
        "The file is too large; the limit for a CRM export is 1 KiB. Export a shorter period and upload it again."
        in response.content.decode()
    )
    assert "This field is required." not in response.content.decode()
    assert not ReconciliationReport.objects.exists()


def test_an_outsider_gets_403_and_stores_nothing(client, outsider):
    client.force_login(outsider)

    assert client.get(reverse("console:attribution")).status_code == 403
    assert upload(client, SAMPLE).status_code == 403
    assert not ReconciliationReport.objects.exists()


def test_a_stranger_is_sent_to_log_in(client, db):
    response = upload(client, SAMPLE)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not ReconciliationReport.objects.exists()


def test_an_upload_still_needs_the_csrf_token(ops_person, sample_leads):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops_person)

    assert upload(client, SAMPLE).status_code == 403
    assert not ReconciliationReport.objects.exists()

    token = client.get(reverse("console:attribution")).context["csrf_token"]
    response = client.post(
        reverse("console:attribution"),
        {"file": SimpleUploadedFile("crm.csv", SAMPLE), "csrfmiddlewaretoken": str(token)},
    )
    assert response.status_code == 302
    assert ReconciliationReport.objects.count() == 1


def test_past_reports_are_listed_in_bounded_queries(client, ops_person, sample_leads, django_assert_max_num_queries):
    for n in range(5):
        reconcile(SAMPLE, by=ops_person, name=f"week-{n}.csv")
    client.force_login(ops_person)

    with django_assert_max_num_queries(8):
        response = client.get(reverse("console:attribution"))

    assert response.status_code == 200
    html = response.content.decode()
    assert all(f"week-{n}.csv" in html for n in range(5))
    assert "88.9% (flagged)" in html


def test_the_csv_download_lists_every_discrepancy_with_formulas_neutralised(client, ops_person, db):
    report = reconcile(HEADER.replace(b"\n", b",amount\n") + b'-2+3,web-form,"=HYPERLINK(""http://x"")",-5\n')
    client.force_login(ops_person)

    response = client.get(reverse("console:attribution-report", args=[report.pk]), {"format": "csv"})

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="attribution-{report.pk}.csv"'
    rows = list(csv.reader(StringIO(response.content.decode())))
    assert rows == [
        ["discrepancy", "origin", "lead_id", "ours", "crm", "stage", "amount", "line", "received_at"],
        ["unknown_to_us", "web-form", "'-2+3", "", '\'=HYPERLINK("http://x")', "", "-5", "2", ""],
    ]


def test_only_attribution_reports_open_on_the_report_page(client, ops_person):
    parity = ReconciliationReport.objects.create(
        kind=ReportKind.PARITY, period_start=SINCE, period_end=UNTIL, created_at=UNTIL
    )
    client.force_login(ops_person)

    assert client.get(reverse("console:attribution-report", args=[parity.pk])).status_code == 404


# Run now: the latest upload's export reconciled again ----------------------------------------------------------

RUN = "/console/reconciliation/attribution/run/"
RUN_DAY = dt.datetime(2026, 5, 12, 9, 0, tzinfo=UTC)  # the Tuesday after the week reconciled


def messages_on(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_run_now_reconciles_the_kept_export_again_after_a_fix_and_replaces_a_run_the_same_day(
    client, ops_person, sample_leads, people
):
    client.force_login(ops_person)
    with time_machine.travel(RUN_DAY, tick=False):
        client.get(upload(client, SAMPLE, name="week-19.csv", since="2026-05-04", until="2026-05-10")["Location"])
    uploaded = ReconciliationReport.objects.get()
    sample_leads["W-3"].assignee = people["bob"]  # the misroute fixed: the CRM has bob
    sample_leads["W-3"].save()

    with time_machine.travel(RUN_DAY + dt.timedelta(hours=1), tick=False):
        first = client.post(RUN, follow=True)
    rerun = ReconciliationReport.objects.exclude(pk=uploaded.pk).get()
    assert first.redirect_chain == [(reverse("console:attribution-report", args=[rerun.pk]), 302)]
    assert messages_on(first) == [
        f"Attribution run again now on week-19.csv (report #{uploaded.pk}, leads received 2026-05-04 00:00 – "
        "2026-05-11 00:00): variance 77.8%, above the 1.0% threshold."
    ]
    assert (rerun.period_start, rerun.period_end, rerun.source_name, rerun.created_by) == (
        SINCE, UNTIL, "week-19.csv", ops_person,
    )  # fmt: skip
    assert (rerun.data["totals"]["misrouted"], rerun.data["run_again_of"]) == (2, uploaded.pk)
    assert uploaded.data["totals"]["misrouted"] == 3  # the upload's own report is kept as it was
    assert (
        f'of <a href="{reverse("console:attribution-report", args=[uploaded.pk])}">report #{uploaded.pk}</a>, run again'
        in (first.content.decode())
    )

    sample_leads["C-1"].assignee = None  # another fix the same day: the CRM has C-1 with no owner
    sample_leads["C-1"].save()
    with time_machine.travel(RUN_DAY + dt.timedelta(hours=5), tick=False):
        again = client.post(RUN, follow=True)
    assert messages_on(again)[0].endswith(f"It replaces today's earlier run (report #{rerun.pk} keeps its number).")
    assert ReconciliationReport.objects.count() == 2  # no second report for the day
    rerun.refresh_from_db()
    assert (rerun.data["totals"]["misrouted"], rerun.created_at) == (1, RUN_DAY + dt.timedelta(hours=5))

    with time_machine.travel(RUN_DAY + dt.timedelta(days=1), tick=False):
        client.post(RUN)
    assert ReconciliationReport.objects.count() == 3  # the next day runs anew

    runs = AuditEvent.objects.filter(action=AuditAction.REPORT_RUN, actor=ops_person).order_by("id")
    assert [(e.outcome, e.data["day"], e.data["replaced"], e.data["export_of"]) for e in runs] == [
        ("attribution", "2026-05-12", False, uploaded.pk),
        ("attribution", "2026-05-12", True, uploaded.pk),
        ("attribution", "2026-05-13", False, uploaded.pk),
    ]


def test_run_now_is_offered_to_ops_and_admins_only_and_refused_to_rule_owners(
    client, ops_person, rule_owner, sample_leads
):
    reconcile(SAMPLE, by=ops_person)
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    for person in (ops_person, admin):
        client.force_login(person)
        assert 'id="attribution-run"' in client.get(UPLOAD).content.decode()
        assert 'action="/console/reconciliation/attribution/run/"' in client.get(UPLOAD).content.decode()

    client.force_login(rule_owner)
    page = client.get(UPLOAD).content.decode()
    assert "attribution-run" not in page and "Run now" not in page  # a button that would refuse them is not shown
    assert client.post(RUN).status_code == 403
    assert ReconciliationReport.objects.count() == 1
    assert not AuditEvent.objects.filter(action=AuditAction.REPORT_RUN).exists()


def test_run_now_needs_the_csrf_token_and_a_console_account(ops_person, outsider, sample_leads):
    reconcile(SAMPLE, by=ops_person)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(ops_person)
    assert strict.post(RUN).status_code == 403
    outside = Client()
    outside.force_login(outsider)
    assert outside.post(RUN).status_code == 403
    assert Client().post(RUN)["Location"].startswith(reverse("login"))
    assert ReconciliationReport.objects.count() == 1


def test_run_now_without_a_kept_export_says_to_upload_one(client, ops_person):
    client.force_login(ops_person)

    page = client.get(UPLOAD).content.decode()
    response = client.post(RUN, follow=True)

    assert "it appears once an export has been uploaded" in page and "<button>Run now</button>" not in page
    assert messages_on(response) == ["Not run: No CRM export is kept to run again: upload one first."]
    assert not ReconciliationReport.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.REPORT_RUN).exists()


def test_only_the_latest_uploads_export_is_kept_and_run_again(client, ops_person, sample_leads):
    older = reconcile(SAMPLE, by=ops_person, name="week-18.csv")
    newer = reconcile(HEADER + b"W-1,web-form,alice\n", by=ops_person, name="week-19.csv")
    client.force_login(ops_person)

    kept = ReconciliationReport.objects.filter(crm_export__isnull=False).values_list("pk", "crm_export")
    client.post(RUN)

    assert [(pk, bytes(content)) for pk, content in kept] == [(newer.pk, HEADER + b"W-1,web-form,alice\n")]
    rerun = ReconciliationReport.objects.exclude(pk__in=[older.pk, newer.pk]).get()
    assert (rerun.source_name, rerun.data["run_again_of"], rerun.data["totals"]["crm_rows"]) == (
        "week-19.csv", newer.pk, 1,
    )  # fmt: skip


def test_the_attribution_pages_never_read_the_kept_export(client, ops_person, sample_leads):
    report = reconcile(SAMPLE, by=ops_person)
    client.force_login(ops_person)

    with CaptureQueriesContext(connection) as queries:
        for url in (UPLOAD, reverse("console:attribution-report", args=[report.pk]), "/console/reconciliation/"):
            assert client.get(url).status_code == 200
        client.get("/console/checklist/")

    selected = [q["sql"].split(" FROM ")[0] for q in queries.captured_queries]
    assert not [s for s in selected if "crm_export" in s]
