"""Lead intake: validate capture-system payloads and insert them, deduplicated by (origin, lead_id).

Validation is a compiled pydantic model (microseconds per lead); inserts are one multi-row
`INSERT … ON CONFLICT DO NOTHING RETURNING` per request, so a duplicate, even a racing one, never
becomes a second lead and never a second routing.
"""

import datetime as dt
import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from django.db import models
from django.utils import timezone
from iso3166 import countries_by_alpha2
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from routing.days import day_out_of_range
from routing.intake_schema import VERSION_FIELD, Shaped, lead_shape
from routing.jsonbounds import NUL_MESSAGE, attribute_shape_problem
from routing.lead_store import leads_insert_new
from routing.models import Lead, LeadStatus, Source
from routing.text import refused_character

# Django's EmailValidator rules for ASCII addresses, compiled once (its lazy regexes cost ~10 µs a call).
_EMAIL_LOCAL = re.compile(r"^[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*\Z", re.IGNORECASE)
_EMAIL_DOMAIN = re.compile(r"^((?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+)(?:[A-Z0-9-]{2,63}(?<!-))\Z", re.IGNORECASE)
_ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|z|[+-]\d{2}(:?\d{2})?)?$")


OptionalText = Annotated[StrictStr | None, Field(default=None)]
Score = Annotated[float | None, Field(default=None, ge=0, le=100, strict=True)]
MAX_ENRICHMENT_REFS = 20


class EnrichmentRef(BaseModel):
    """A record an enrichment system already holds about the lead (the canonical event's enrichment_refs)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, title="EnrichmentRef")

    provider: Annotated[StrictStr, Field(min_length=1, max_length=100, description="e.g. clearbit.")]
    ref: Annotated[StrictStr, Field(min_length=1, max_length=200, description="The record's id there.")]

    @field_validator("provider", "ref")
    @classmethod
    def plain_text(cls, value):
        problem = refused_character(value) or ("\x00" in value and NUL_MESSAGE)
        if problem:
            raise ValueError(problem)
        return value


def _ascii_domain(domain: str) -> str:
    """An internationalised domain (münchen.de) as DNS writes it (xn--mnchen-3ya.de), as Django's validator
    checks it; "" when it has no such form."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return ""


class LeadIn(BaseModel):
    """One lead as a capture system posts it (README: Intake API)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, title="Lead")

    lead_id: Annotated[StrictStr, Field(min_length=1, max_length=128, description="The capture system's stable id.")]
    email: Annotated[StrictStr | None, Field(default=None, max_length=254)]
    phone: Annotated[StrictStr | None, Field(default=None, max_length=32)]
    first_name: Annotated[StrictStr | None, Field(default=None, max_length=150)]
    last_name: Annotated[StrictStr | None, Field(default=None, max_length=150)]
    company: Annotated[StrictStr | None, Field(default=None, max_length=200)]
    company_size: Annotated[StrictInt | None, Field(default=None, ge=0, le=2_147_483_647)]
    country: Annotated[StrictStr | None, Field(default=None, description="ISO 3166-1 alpha-2 code.")]
    lifecycle_stage: Annotated[
        StrictStr | None, Field(default=None, max_length=64, description="e.g. lead, mql, sql; stored lower-case.")
    ]
    engagement_score: Score
    intent_score: Score
    occurred_at: Annotated[dt.datetime | None, Field(default=None, description="ISO 8601; default: receipt.")]
    # validate_default: an omitted `attributes` goes through bounded_attributes too, which stores {} (not NULL).
    attributes: Annotated[
        dict[str, Any] | None, Field(default=None, validate_default=True, description="Further fields.")
    ]
    schema_version: Annotated[
        StrictStr | StrictInt | None,
        Field(
            default=None,
            exclude=True,  # read by intake_schema before validation; not a lead field
            description="The capture schema version this lead follows (GET /api/v1/schema-versions/ lists them); "
            "default: its source's, else the newest in effect.",
        ),
    ]
    enrichment_refs: Annotated[
        list[EnrichmentRef] | None,
        Field(
            default=None,
            validate_default=True,  # an omitted or null list is stored as [] (the column is NOT NULL)
            max_length=MAX_ENRICHMENT_REFS,
            description="Capture schema 2 on: enrichment records.",
        ),
    ]

    @field_validator("lead_id", "email", "phone", "first_name", "last_name", "company", "country", "lifecycle_stage")
    @classmethod
    def no_nul(cls, value):
        if value is not None and "\x00" in value:
            raise ValueError(NUL_MESSAGE)
        return value

    @field_validator("lead_id", "first_name", "last_name", "company", "lifecycle_stage")
    @classmethod
    def no_control_or_bidi_characters(cls, value):
        # Email, phone and country have formats of their own that already refuse these.
        problem = value and refused_character(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("email", "phone", "first_name", "last_name", "company", "country", "lifecycle_stage")
    @classmethod
    def blank_is_null(cls, value):
        return value or None

    @field_validator("email")
    @classmethod
    def valid_email(cls, value):
        if value is None:
            return None
        local, _, domain = value.rpartition("@")
        if not (_EMAIL_LOCAL.match(local) and _EMAIL_DOMAIN.match(_ascii_domain(domain))):
            raise ValueError("Enter a valid email address.")
        return value.lower()

    @field_validator("phone")
    @classmethod
    def valid_phone(cls, value):
        if value is None:
            return None
        digits = sum(ch.isdigit() for ch in value)
        if digits < 4 or any(not (ch.isdigit() or ch in "+-(). ") for ch in value):
            raise ValueError("Enter a phone number: digits, spaces and + - ( ) . only, at least 4 digits.")
        return value

    @field_validator("country")
    @classmethod
    def valid_country(cls, value):
        if value is None:
            return None
        code = value.upper()
        if code not in countries_by_alpha2:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. US, DE, GB).")
        return code

    @field_validator("lifecycle_stage")
    @classmethod
    def lower_stage(cls, value):
        return value.lower() if value else None

    @field_validator("occurred_at", mode="before")
    @classmethod
    def iso_only(cls, value):
        if value is not None and not (isinstance(value, str) and _ISO_8601.match(value)):
            raise ValueError("Use an ISO 8601 date-time string, e.g. 2026-11-21T09:30:00Z.")
        return value

    @field_validator("occurred_at")
    @classmethod
    def aware(cls, value):
        if value is None:
            return value
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        # In range once in UTC, as it is stored: year 1 at +14:00 is 1 BC to PostgreSQL, 9999 at -23:59 is past it.
        try:
            day = value.astimezone(dt.UTC).date()
        except OverflowError:
            day = dt.date.max
        if problem := day_out_of_range(day):
            raise ValueError(f"{value.isoformat()} is out of range (in UTC). {problem}")
        return value

    @field_validator("enrichment_refs")
    @classmethod
    def refs_as_plain_list(cls, value):
        return value or []

    @field_validator("attributes")
    @classmethod
    def bounded_attributes(cls, value):
        if value is None:
            return {}
        if problem := attribute_shape_problem(value):
            raise ValueError(problem)
        return value


_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field. Allowed fields: " + ", ".join(LeadIn.model_fields) + ".",
    "string_type": "Must be a string.",
    "int_type": "Must be a whole number.",
    "float_type": "Must be a number.",
    "dict_type": "Must be a JSON object.",
    "model_type": "Each lead must be a JSON object.",
}


# Inside a list of objects (enrichment_refs): the lead-level wording would be wrong there.
_NESTED_MESSAGES = {
    **_MESSAGES,
    "extra_forbidden": "Unknown field.",
    "model_type": "Must be a JSON object.",
}


def validation_errors(exc: ValidationError) -> dict[str, list[str]]:
    """pydantic errors in DRF's shape: {"field": ["message", …]}; an error inside a field's items names the
    item and its field first ("[0].ref: This field is required.")."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        name = str(loc[0]) if loc else "non_field_errors"
        messages = _NESTED_MESSAGES if len(loc) > 1 else _MESSAGES
        message = messages.get(error["type"]) or error["msg"].removeprefix("Value error, ")
        if len(loc) > 1:
            path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:])
            message = f"{path.removeprefix('.')}: {message}"
        errors.setdefault(name, []).append(message)
    return errors


def validate_lead(payload: Any) -> tuple[LeadIn | None, dict[str, list[str]] | None]:
    if not isinstance(payload, dict):
        return None, {"non_field_errors": ["Expected a JSON object with the lead's fields."]}
    try:
        return LeadIn.model_validate(payload), None
    except ValidationError as exc:
        return None, validation_errors(exc)


def validate_posted_lead(payload: Any, source: Source) -> tuple[LeadIn | None, Shaped | None, dict | None]:
    """A posted lead read under its capture schema version (routing/intake_schema.py), then validated: the
    lead, how it was read (version, warnings) and every error at once (the schema's and the fields')."""
    if not isinstance(payload, dict):
        return None, None, {"non_field_errors": ["Expected a JSON object with the lead's fields."]}
    shaped = lead_shape(payload, source_default=source.schema_version, policy=source.unknown_fields)
    if shaped.errors and VERSION_FIELD in shaped.errors:
        return None, shaped, shaped.errors
    lead_in, errors = validate_lead(shaped.lead)
    if shaped.errors:
        errors = {**shaped.errors, **(errors or {})}
    return (None if errors else lead_in), shaped, errors


class IntakeStatus(models.TextChoices):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    INVALID = "invalid"


@dataclass
class IntakeResult:
    lead_id: str | None
    status: str
    id: int | None = None
    lead_status: str | None = None
    errors: dict | None = field(default=None)
    schema_version: str = ""
    warnings: dict | None = None


def leads_intake(*, source: Source, payloads: list[Any]) -> tuple[list[IntakeResult], list[int]]:
    """Validate and store leads from one source. Returns a result per payload, in input order, and the
    ids of the leads this call created (to be routed once the transaction commits)."""
    now = timezone.now()
    results: list[IntakeResult] = []
    fresh: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        lead_in, shaped, errors = validate_posted_lead(payload, source)
        version = shaped.version if shaped else ""
        if errors is not None:
            raw_id = payload.get("lead_id") if isinstance(payload, dict) else None
            results.append(
                IntakeResult(
                    raw_id if isinstance(raw_id, str) else None,
                    IntakeStatus.INVALID,
                    errors=errors,
                    schema_version=version,
                )
            )
            continue
        results.append(
            IntakeResult(lead_in.lead_id, IntakeStatus.ACCEPTED, schema_version=version, warnings=shaped.warnings)
        )
        fresh.setdefault(lead_in.lead_id, _new_row(source, lead_in, now, version))

    # Sorted, so overlapping batches take unique-index locks in one order and cannot deadlock.
    inserted = leads_insert_new(sorted(fresh.values(), key=lambda row: row["lead_id"]), at=now)
    existing: dict[str, tuple[int, str, str]] = {}
    missing = [key for key in fresh if key not in inserted]
    if missing:
        rows = Lead.objects.filter(origin=source, lead_id__in=missing).values_list(
            "id", "lead_id", "status", "schema_version"
        )
        existing = {lead_id: (pk, status, version) for pk, lead_id, status, version in rows}

    claimed: set[str] = set()
    for result in results:
        if result.status != IntakeStatus.ACCEPTED:
            continue
        key = result.lead_id
        if key in inserted and key not in claimed:
            claimed.add(key)
            result.id, result.lead_status = inserted[key], LeadStatus.RECEIVED
        else:  # already stored, by an earlier request or earlier in this batch: answered as it was stored
            result.status = IntakeStatus.DUPLICATE
            stored = existing.get(key) or (inserted[key], LeadStatus.RECEIVED, fresh[key]["schema_version"])
            result.id, result.lead_status, result.schema_version = stored
            result.warnings = None
    return results, list(inserted.values())


def _new_row(source: Source, lead_in: LeadIn, now: dt.datetime, schema_version: str) -> dict[str, Any]:
    row = lead_in.model_dump()
    row["occurred_at"] = row["occurred_at"] or now
    row.update(origin_id=source.pk, received_at=now, status=LeadStatus.RECEIVED, schema_version=schema_version)
    return row


_waiting_cache: tuple[float, int] | None = None


def leads_waiting_for_routing(*, max_age_seconds: float = 1.0) -> int:
    """How many leads wait for routing (`received`), counted on the partial index `lead_pending_idx`; kept per
    process for a second, so concurrent batch posts do not each count again."""
    global _waiting_cache
    now = time.monotonic()
    if _waiting_cache is None or now - _waiting_cache[0] > max_age_seconds:
        # Leads held for their queue's working hours are not backlog: a weekend's holds must not refuse imports.
        waiting = Lead.objects.filter(status=LeadStatus.RECEIVED, waiting_until__isnull=True)
        _waiting_cache = (now, waiting.count())
    return _waiting_cache[1]


class SampleLeadError(ValueError):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()))


def sample_fields(sample: Any) -> dict:
    """A pasted or test-case lead's fields, validated like intake (lead_id optional)."""
    if not isinstance(sample, dict):
        raise SampleLeadError({"lead": ["Expected a JSON object with the lead's fields."]})
    try:
        clean = LeadIn.model_validate({"lead_id": "sample", **sample})
    except ValidationError as exc:
        raise SampleLeadError(validation_errors(exc)) from None
    return {name: getattr(clean, name) for name in Lead.ROUTABLE_FIELDS}
