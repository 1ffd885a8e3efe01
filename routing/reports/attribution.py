"""Weekly attribution reconciliation: a CSV exported from the CRM compared with our assignments.

The CRM export has one row per lead: `lead_id`, `origin` (the capture source's name), `owner` (the CRM owner's
username or email) and optionally `stage` and `amount`. Headers match case-insensitively ("Lead ID" is
`lead_id`); a UTF-8 byte-order mark, and `;` or tab as the delimiter, are accepted.

Our side is every lead *received* in the period (half-open: since <= received_at < until; by default the
7 days up to now), keyed by (origin name, lead_id); origins match case-insensitively, lead ids exactly.

- matched: the CRM owner is our assignee's username or email (case-insensitive), or both sides have no owner.
- misrouted: the CRM has the lead with another owner. A lead we never assigned (still `received`, or in an
  exception) that the CRM has with an owner is misrouted too (ours: none).
- missing_in_crm: a lead we assigned that the CRM lacks. A lead we never assigned was never sent to the CRM,
  so its absence is no discrepancy: it is counted as `unassigned_here`, not as missing.
- unknown_to_us: a CRM row matching no lead of ours at all.
- outside_period: a CRM row for a lead we have, received outside the period (the CRM's week and our
  `received_at` rarely cut at the same instant); listed, not counted as a discrepancy.

So our_leads = matched + misrouted + missing_in_crm + unassigned_here, crm_rows = matched + misrouted +
unknown_to_us + outside_period, and variance = (misrouted + missing_in_crm + unknown_to_us) / max(our_leads, 1),
flagged above HANDOFF["PARITY_THRESHOLD"]. The stored ReconciliationReport (who, when, which file and its
SHA-256) is the record of an upload. The one other change an upload makes: rows at a converted stage
(HANDOFF["CONVERTED_STAGES"]) stamp Lead.converted_at on our leads not stamped before (conversions_stamp, for
the experiments' conversion figures); the report records how many. No audit event is written.

The latest upload keeps its file (ReconciliationReport.crm_export; the next upload clears it), so that Run now
(attribution_run_again) reconciles it again over the same period against our assignments as they are now,
after misroutes were fixed, with no upload. One such run per export per UTC day: a second run that day
replaces the first. Run now is audited (report.run)."""

import codecs
import csv
import datetime as dt
import hashlib
import io
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from routing.days import day_bounds, range_end, range_start
from routing.models import Lead, Source
from routing.reports.models import ReconciliationReport, ReportKind
from routing.text import csv_cell

REQUIRED_COLUMNS = ("lead_id", "origin", "owner")
OPTIONAL_COLUMNS = ("stage", "amount")
DEFAULT_PERIOD = dt.timedelta(days=7)
DEFAULT_MAX_ROWS = 200_000
# Each list in a stored report keeps at most this many entries (the totals stay exact), so a wholly wrong
# export (every row unknown) does not become a 20 MB JSON document.
MAX_LISTED = 5_000
MAX_ROW_PROBLEMS_SHOWN = 10
LIST_NAMES = ("misrouted", "missing_in_crm", "unknown_to_us", "outside_period")


class AttributionFileError(Exception):
    """The CRM export cannot be reconciled; the message says why and what to do, for a person to read."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def attribution_period(
    *, since: dt.date | None = None, until: dt.date | None = None, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """The period a person typed, read as every date range is (routing.days): from the start of day `since` to
    the end of day `until` (inclusive), in UTC; a date-time is an instant (`until` then not included). Without
    `until`, up to now; without `since`, the 7 days before the end."""
    now = now or timezone.now()
    end = range_end(until) if until else now
    start = range_start(since) if since else end - DEFAULT_PERIOD
    if start >= end:
        raise ValueError(
            f"The period is empty: since ({start:%Y-%m-%d %H:%M}) is not before until ({end:%Y-%m-%d %H:%M})."
        )
    return start, end


def attribution_reconcile(*, file, name: str, by, since=None, until=None) -> ReconciliationReport:
    """Reconcile a CRM export (a binary file-like) with the leads received in [since, until) and store the
    report, keeping the file for Run now (the previous upload's is cleared). Raises AttributionFileError for a
    file that cannot be read, before anything is written."""
    until = until or timezone.now()
    since = since or until - DEFAULT_PERIOD
    if since >= until:
        raise ValueError("The period is empty: since must be before until.")
    raw = _read_limited(file)
    parsed = _parse(raw)
    fields = _reconciled(raw, name=name, since=since, until=until, parsed=parsed)
    now = timezone.now()
    with transaction.atomic():
        ReconciliationReport.objects.filter(kind=ReportKind.ATTRIBUTION, crm_export__isnull=False).update(
            crm_export=None
        )
        fields["data"]["conversions"] = conversions_stamp(rows=parsed.rows, at=now)
        return ReconciliationReport.objects.create(
            kind=ReportKind.ATTRIBUTION, created_at=now, created_by=by, crm_export=raw, **fields
        )


def conversions_stamp(*, rows: list["CrmRow"], at: dt.datetime) -> dict:
    """Mark our leads the CRM has at a converted stage (HANDOFF["CONVERTED_STAGES"], case-insensitive) as
    converted at `at`, for the experiments' conversion figures (README: Experiments). A lead keeps the first
    upload that saw it converted. Returns what the report records: the stages, the rows at one, the leads
    stamped now."""
    stages = {stage.strip().casefold() for stage in settings.HANDOFF["CONVERTED_STAGES"]}
    converted = [row for row in rows if row.stage.strip().casefold() in stages]
    pks = sorted(lead[0] for lead in _leads_for(converted).values())
    stamped = 0
    for start in range(0, len(pks), 10_000):
        chunk = pks[start : start + 10_000]
        stamped += Lead.objects.filter(pk__in=chunk, converted_at__isnull=True).update(converted_at=at)
    return {"stages": sorted(stages), "rows": len(converted), "stamped": stamped}


def _reconciled(
    raw: bytes, *, name: str, since: dt.datetime, until: dt.datetime, parsed: "ParsedExport | None" = None
) -> dict:
    """A report's fields (all but who and when) for a CRM export's bytes over [since, until)."""
    parsed = parsed or _parse(raw)
    data = _compare(parsed, since=since, until=until)
    totals = data["totals"]
    threshold = settings.HANDOFF["PARITY_THRESHOLD"]
    variance = (totals["misrouted"] + totals["missing_in_crm"] + totals["unknown_to_us"]) / max(totals["our_leads"], 1)
    data["threshold"] = threshold
    data["file"] = {
        "name": name,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "columns": parsed.columns,
        "delimiter": parsed.delimiter,
    }
    return {
        "period_start": since,
        "period_end": until,
        "source_name": name[:255],
        "data": data,
        "variance": variance,
        "flagged": variance > threshold,
    }


def attribution_export_kept() -> ReconciliationReport | None:
    """The upload whose CRM export is kept for Run now (the latest), without the file; None before any."""
    return (
        ReconciliationReport.objects.filter(kind=ReportKind.ATTRIBUTION, crm_export__isnull=False)
        .select_related("created_by")
        .defer("data")
        .first()
    )


@dataclass(frozen=True)
class RunAgain:
    report: ReconciliationReport
    upload: ReconciliationReport  # the upload whose export was reconciled again
    replaced: bool  # it replaced a run made earlier the same UTC day


def attribution_run_again(*, by, now: dt.datetime | None = None) -> RunAgain:
    """Run now: reconcile the kept CRM export (the latest upload's) again, over its period, with our leads and
    assignments as they are now. A second run of the same export on the same UTC day replaces that day's report
    (same id) instead of adding another. Audited as report.run, in the same transaction. Raises
    AttributionFileError when no export is kept."""
    now = now or timezone.now()
    start, end = day_bounds(now.astimezone(dt.UTC).date())
    with transaction.atomic():
        # Locked: two people pressing Run now at once make one report for the day, not two.
        upload = (
            ReconciliationReport.objects.select_for_update()
            .filter(kind=ReportKind.ATTRIBUTION, crm_export__isnull=False)
            .defer("data")
            .first()
        )
        if upload is None:
            raise AttributionFileError("No CRM export is kept to run again: upload one first.")
        raw = bytes(ReconciliationReport.objects.filter(pk=upload.pk).values_list("crm_export", flat=True).get())
        fields = _reconciled(raw, name=upload.source_name, since=upload.period_start, until=upload.period_end)
        fields["data"]["run_again_of"] = upload.pk
        earlier = ReconciliationReport.objects.filter(
            kind=ReportKind.ATTRIBUTION, created_at__gte=start, created_at__lt=end, data__run_again_of=upload.pk
        ).first()
        if earlier is None:
            report = ReconciliationReport.objects.create(
                kind=ReportKind.ATTRIBUTION, created_at=now, created_by=by, **fields
            )
        else:
            report = earlier
            for name, value in {**fields, "created_at": now, "created_by": by}.items():
                setattr(report, name, value)
            report.save()
        audit_record(
            action=AuditAction.REPORT_RUN,
            actor=by,
            outcome="attribution",
            data={
                "report": "attribution",
                "day": start.date().isoformat(),
                "report_id": report.pk,
                "export_of": upload.pk,
                "replaced": earlier is not None,
                "flagged": report.flagged,
            },
        )
    return RunAgain(report=report, upload=upload, replaced=earlier is not None)


def attribution_reports() -> QuerySet:
    """Past attribution reports, newest first, with their totals but without the (possibly long) lists."""
    return (
        ReconciliationReport.objects.filter(kind=ReportKind.ATTRIBUTION)
        .select_related("created_by")
        .annotate(totals=KeyTransform("totals", "data"), run_again_of=KeyTransform("run_again_of", "data"))
        .defer("data")
    )


# Reading the file ------------------------------------------------------------------------------------------


def _human_bytes(size: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def size_limit_message(size: int | None = None) -> str:
    limit = _human_bytes(settings.HANDOFF["ATTRIBUTION_MAX_BYTES"])
    what = f"The file is {_human_bytes(size)}" if size else "The file is too large"
    return f"{what}; the limit for a CRM export is {limit}. Export a shorter period and upload it again."


def _size_of(file) -> int | None:
    """The bytes left to read, when the file can tell (an upload's size, a seekable file's end)."""
    size = getattr(file, "size", None)
    if size is not None:
        return size
    try:
        position = file.tell()
        end = file.seek(0, io.SEEK_END)
        file.seek(position)
    except (AttributeError, OSError, ValueError):
        return None
    return end - position


def _read_limited(file) -> bytes:
    limit = settings.HANDOFF["ATTRIBUTION_MAX_BYTES"]
    size = _size_of(file)
    if size is not None and size > limit:
        raise AttributionFileError(size_limit_message(size))
    raw = file.read(limit + 1)
    if len(raw) > limit:
        raise AttributionFileError(size_limit_message(size))
    return raw


def _location(raw: bytes, offset: int) -> str:
    line = raw.count(b"\n", 0, offset) + 1
    return f"byte offset {offset} (line {line})"


def _decode(raw: bytes) -> str:
    if not raw.strip(codecs.BOM_UTF8 + b" \t\r\n"):
        raise AttributionFileError(
            f"The file is empty: expected a header line with {', '.join(REQUIRED_COLUMNS)} and a row per lead."
        )
    if raw.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise AttributionFileError(
            "This is a spreadsheet (or zip) file, not CSV text. Save or export it as 'CSV UTF-8' and upload that."
        )
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise AttributionFileError("The file is UTF-16 text, not UTF-8. Export the CSV as UTF-8 ('CSV UTF-8').")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise AttributionFileError(
            f"The file is not UTF-8 text: a NUL byte at {_location(raw, nul)} (UTF-16 or a binary file?). "
            "Export the CSV as UTF-8 ('CSV UTF-8')."
        )
    skip = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        raise AttributionFileError(
            f"The file is not UTF-8 text: byte 0x{raw[offset]:02X} at {_location(raw, offset)} cannot be "
            "decoded. Export the CSV as UTF-8 ('CSV UTF-8' in Excel) and upload it again."
        ) from None


# Parsing ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrmRow:
    line: int
    lead_id: str
    origin: str
    owner: str
    stage: str
    amount: Decimal | None
    key: tuple[str, str]  # (origin folded to lower case, lead_id): what rows and leads are matched by


@dataclass(frozen=True)
class ParsedExport:
    columns: list[str]
    delimiter: str
    rows: list[CrmRow]
    has_amount: bool


def _key(origin: str, lead_id: str) -> tuple[str, str]:
    return origin.strip().casefold(), lead_id.strip()


def _column(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.replace("\ufeff", "").strip().casefold())


def _header(text: str) -> tuple[list[str], list[str], str]:
    """The header as written and normalised, and its delimiter: the first of comma, semicolon and tab that
    yields the required columns, else the one that yields the most columns (for the error message)."""
    candidates = []
    for delimiter in (",", ";", "\t"):
        try:
            written = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        columns = [_column(h) for h in written]
        if set(REQUIRED_COLUMNS) <= set(columns):
            return written, columns, delimiter
        candidates.append((written, columns, delimiter))
    if not candidates:
        raise AttributionFileError("The header line cannot be read as CSV.")
    return max(candidates, key=lambda c: len(c[1]))


def _parse(raw: bytes) -> ParsedExport:
    text = _decode(raw)
    written, columns, delimiter = _header(text)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        found = ", ".join(repr(h.replace("\ufeff", "").strip()) for h in written)
        raise AttributionFileError(
            f"Missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}. Columns found: {found}. "
            f"Required: {', '.join(REQUIRED_COLUMNS)}; optional: {', '.join(OPTIONAL_COLUMNS)}."
        )
    repeated = sorted({c for c in columns if c and columns.count(c) > 1})
    if repeated:
        raise AttributionFileError(f"Column{'s' if len(repeated) > 1 else ''} named twice: {', '.join(repeated)}.")
    index = {name: columns.index(name) for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if name in columns}

    max_rows = settings.HANDOFF.get("ATTRIBUTION_MAX_ROWS", DEFAULT_MAX_ROWS)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[CrmRow] = []
    problems: list[str] = []
    duplicates: list[str] = []
    first_line: dict[tuple[str, str], int] = {}
    line = 1
    try:
        next(reader)  # the header
        line = reader.line_num + 1
        for fields in reader:
            start, line = line, reader.line_num + 1
            if not any(field.strip() for field in fields):
                continue  # a blank line, or one of only delimiters
            if len(rows) + len(problems) >= max_rows:
                raise AttributionFileError(
                    f"The file has more than {max_rows:,} rows (line {start} is past the limit). "
                    "Export a shorter period and upload it again."
                )
            row, problem = _row(fields, start, len(columns), index)
            if problem:
                problems.append(problem)
                continue
            seen = first_line.setdefault(row.key, start)
            if seen != start:
                duplicates.append(f"line {start} repeats line {seen} (origin {row.origin!r}, lead_id {row.lead_id!r})")
            rows.append(row)
    except csv.Error as exc:
        raise AttributionFileError(
            f'Line {line}: the CSV cannot be parsed ({exc}). Check for an unbalanced quote (") there.'
        ) from None
    if problems:
        raise AttributionFileError(_problems("malformed row", problems, "Fix them in the export and upload it again."))
    if duplicates:
        raise AttributionFileError(
            _problems("duplicate row", duplicates, "Each (origin, lead_id) must appear once.", what="for one lead")
        )
    return ParsedExport(columns=columns, delimiter=delimiter, rows=rows, has_amount="amount" in index)


def _row(fields: list[str], line: int, width: int, index: dict[str, int]) -> tuple[CrmRow | None, str | None]:
    if len(fields) != width:
        return None, f"line {line}: {len(fields)} field{'s' if len(fields) != 1 else ''} where the header has {width}"
    values = {name: fields[i].strip() for name, i in index.items()}
    for name in ("lead_id", "origin"):
        if not values[name]:
            return None, f"line {line}: {name} is empty"
    amount = None
    if values.get("amount"):
        try:
            amount = Decimal(values["amount"])
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite():
            return None, (
                f"line {line}: amount {values['amount']!r} is not a number (digits and a decimal point, e.g. 1234.50)"
            )
    origin, lead_id = values["origin"], values["lead_id"]
    row = CrmRow(line, lead_id, origin, values["owner"], values.get("stage", ""), amount, _key(origin, lead_id))
    return row, None


def _problems(kind: str, problems: list[str], advice: str, what: str = "") -> str:
    shown = "; ".join(problems[:MAX_ROW_PROBLEMS_SHOWN])
    more = f"; and {len(problems) - MAX_ROW_PROBLEMS_SHOWN} more" if len(problems) > MAX_ROW_PROBLEMS_SHOWN else ""
    plural = "s" if len(problems) > 1 else ""
    return f"{len(problems)} {kind}{plural}{' ' + what if what else ''}: {shown}{more}. {advice}"


# Comparing -------------------------------------------------------------------------------------------------

_OURS = ("pk", "origin__name", "lead_id", "assignee__username", "assignee__email", "received_at")


def _compare(parsed: ParsedExport, *, since: dt.datetime, until: dt.datetime) -> dict:
    ours: dict[tuple[str, str], tuple] = {}
    for lead in (
        Lead.objects.filter(received_at__gte=since, received_at__lt=until)
        .values_list(*_OURS)
        .order_by()
        .iterator(chunk_size=5000)
    ):
        ours[_key(lead[1], lead[2])] = lead

    lists: dict[str, list[dict]] = {name: [] for name in LIST_NAMES}
    matched = 0
    seen: set[tuple[str, str]] = set()
    elsewhere = []
    for row in parsed.rows:
        lead = ours.get(row.key)
        if lead is None:
            elsewhere.append(row)
            continue
        seen.add(row.key)
        if _same_owner(lead, row.owner):
            matched += 1
        else:
            lists["misrouted"].append({**_lead_entry(lead), **_crm_entry(row)})

    unassigned_here = 0
    for key, lead in ours.items():
        if key in seen:
            continue
        if lead[3] is None:
            unassigned_here += 1
        else:
            lists["missing_in_crm"].append({**_lead_entry(lead), "received_at": lead[5].isoformat()})

    known = _leads_for(elsewhere)
    for row in elsewhere:
        lead = known.get(row.key)
        if lead is None:
            lists["unknown_to_us"].append({"lead_id": row.lead_id, "origin": row.origin, **_crm_entry(row)})
        else:
            lists["outside_period"].append({**_lead_entry(lead), **_crm_entry(row), "received_at": lead[5].isoformat()})

    totals = {
        "crm_rows": len(parsed.rows),
        "our_leads": len(ours),
        "matched": matched,
        **{name: len(lists[name]) for name in LIST_NAMES},
        "unassigned_here": unassigned_here,
    }
    data: dict = {"totals": totals}
    if parsed.has_amount:
        data["amounts"] = {
            "crm": str(sum((r.amount or 0 for r in parsed.rows), Decimal(0))),
            "misrouted": _amount_of(lists["misrouted"]),
            "unknown_to_us": _amount_of(lists["unknown_to_us"]),
        }
    data["truncated"] = [name for name in LIST_NAMES if len(lists[name]) > MAX_LISTED]
    for name in LIST_NAMES:
        data[name] = sorted(lists[name], key=lambda e: (e["origin"].casefold(), e["lead_id"]))[:MAX_LISTED]
    return data


def _same_owner(lead: tuple, crm_owner: str) -> bool:
    owner = crm_owner.strip().casefold()
    if lead[3] is None:
        return not owner
    return owner in {(lead[3] or "").casefold(), (lead[4] or "").strip().casefold()} - {""}


def _lead_entry(lead: tuple) -> dict:
    return {"pk": lead[0], "lead_id": lead[2], "origin": lead[1], "ours": lead[3]}


def _crm_entry(row: CrmRow) -> dict:
    return {
        "crm": row.owner,
        "line": row.line,
        "stage": row.stage,
        "amount": None if row.amount is None else str(row.amount),
    }


def _amount_of(entries: list[dict]) -> str:
    return str(sum((Decimal(e["amount"]) for e in entries if e["amount"] is not None), Decimal(0)))


def _leads_for(rows: list[CrmRow]) -> dict[tuple[str, str], tuple]:
    """Our leads (received any time) for CRM rows that matched none received in the period. Queried per
    source, so the (origin, lead_id) unique index serves it; a row naming no source of ours needs no query."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        wanted[row.key[0]].add(row.key[1])
    sources: dict[str, list[int]] = defaultdict(list)
    for pk, source_name in Source.objects.values_list("pk", "name"):
        sources[source_name.strip().casefold()].append(pk)
    found: dict[tuple[str, str], tuple] = {}
    for origin, lead_ids in wanted.items():
        if origin not in sources:
            continue
        ids = sorted(lead_ids)
        for start in range(0, len(ids), 10_000):
            chunk = Lead.objects.filter(origin_id__in=sources[origin], lead_id__in=ids[start : start + 10_000])
            for lead in chunk.values_list(*_OURS).order_by():
                found[_key(lead[1], lead[2])] = lead
    return found


# Download --------------------------------------------------------------------------------------------------

DOWNLOAD_COLUMNS = ("discrepancy", "origin", "lead_id", "ours", "crm", "stage", "amount", "line", "received_at")


def attribution_report_csv(report: ReconciliationReport, out) -> None:
    """Write the report's discrepancies as CSV to a text stream, one row per lead, formulas neutralised."""
    writer = csv.writer(out)
    writer.writerow(DOWNLOAD_COLUMNS)
    for name in LIST_NAMES:
        for entry in report.data.get(name, []):
            writer.writerow([csv_cell(name), *(csv_cell(entry.get(column)) for column in DOWNLOAD_COLUMNS[1:])])
