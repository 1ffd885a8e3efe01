"""Lead intake: validate capture-system payloads and insert them, deduplicated by (origin, lead_id).

Validation is a compiled pydantic model (microseconds per lead); inserts are one multi-row
`INSERT … ON CONFLICT DO NOTHING RETURNING` per request, so a duplicate, even a racing one, never
becomes a second lead and never a second routing.
"""

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone
from iso3166 import countries_by_alpha2
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from routing.models import Lead, LeadStatus, Source

MAX_ATTRIBUTE_DEPTH = 5
MAX_ATTRIBUTE_KEYS = 200

OptionalText = Annotated[StrictStr | None, Field(default=None)]
Score = Annotated[float | None, Field(default=None, ge=0, le=100, strict=True)]


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
    attributes: Annotated[dict[str, Any] | None, Field(default=None, description="Further fields.")]

    @field_validator("email", "phone", "first_name", "last_name", "company", "country", "lifecycle_stage")
    @classmethod
    def blank_is_null(cls, value):
        return value or None

    @field_validator("email")
    @classmethod
    def valid_email(cls, value):
        if value is None:
            return None
        try:
            validate_email(value)
        except DjangoValidationError:
            raise ValueError("Enter a valid email address.") from None
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
        if value is not None and not isinstance(value, str):
            raise ValueError("Use an ISO 8601 date-time string, e.g. 2026-11-21T09:30:00Z.")
        return value

    @field_validator("occurred_at")
    @classmethod
    def aware(cls, value):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value

    @field_validator("attributes")
    @classmethod
    def bounded_attributes(cls, value):
        if value is None:
            return {}
        _check_attribute_shape(value, depth=1)
        return value


def _check_attribute_shape(value, depth: int) -> None:
    if depth > MAX_ATTRIBUTE_DEPTH:
        raise ValueError(f"Nested deeper than {MAX_ATTRIBUTE_DEPTH} levels; flatten it.")
    if isinstance(value, dict):
        if len(value) > MAX_ATTRIBUTE_KEYS:
            raise ValueError(f"More than {MAX_ATTRIBUTE_KEYS} keys in one object.")
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return
    for child in children:
        if isinstance(child, dict | list):
            _check_attribute_shape(child, depth + 1)


_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field. Allowed fields: " + ", ".join(LeadIn.model_fields) + ".",
    "string_type": "Must be a string.",
    "int_type": "Must be a whole number.",
    "float_type": "Must be a number.",
    "dict_type": "Must be a JSON object.",
    "model_type": "Each lead must be a JSON object.",
}


def validation_errors(exc: ValidationError) -> dict[str, list[str]]:
    """pydantic errors in DRF's shape: {"field": ["message", …]}."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "non_field_errors"
        message = _MESSAGES.get(error["type"]) or error["msg"].removeprefix("Value error, ")
        errors.setdefault(name, []).append(message)
    return errors


def validate_lead(payload: Any) -> tuple[LeadIn | None, dict[str, list[str]] | None]:
    if not isinstance(payload, dict):
        return None, {"non_field_errors": ["Expected a JSON object with the lead's fields."]}
    try:
        return LeadIn.model_validate(payload), None
    except ValidationError as exc:
        return None, validation_errors(exc)


class IntakeStatus:
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


_INSERT_FIELDS = [f for f in Lead._meta.concrete_fields if not f.primary_key]


def leads_intake(*, source: Source, payloads: list[Any]) -> tuple[list[IntakeResult], list[int]]:
    """Validate and store leads from one source. Returns a result per payload, in input order, and the
    ids of the leads this call created (to be routed once the transaction commits)."""
    results: list[IntakeResult] = []
    fresh: dict[str, Lead] = {}
    for payload in payloads:
        lead_in, errors = validate_lead(payload)
        if errors is not None:
            raw_id = payload.get("lead_id") if isinstance(payload, dict) else None
            results.append(
                IntakeResult(raw_id if isinstance(raw_id, str) else None, IntakeStatus.INVALID, errors=errors)
            )
            continue
        results.append(IntakeResult(lead_in.lead_id, IntakeStatus.ACCEPTED))
        fresh.setdefault(lead_in.lead_id, _new_lead(source, lead_in))

    inserted: dict[str, int] = {}
    existing: dict[str, tuple[int, str]] = {}
    if fresh:
        with transaction.atomic():
            inserted = _insert_ignoring_duplicates(list(fresh.values()))
            created = [lead for key, lead in fresh.items() if key in inserted]
            for lead in created:
                lead.pk = inserted[lead.lead_id]
            if created:
                Lead.history.bulk_history_create(created)
            missing = [key for key in fresh if key not in inserted]
            if missing:
                existing = {
                    lead_id: (pk, status)
                    for pk, lead_id, status in Lead.objects.filter(origin=source, lead_id__in=missing).values_list(
                        "id", "lead_id", "status"
                    )
                }

    claimed: set[str] = set()
    for result in results:
        if result.status != IntakeStatus.ACCEPTED:
            continue
        key = result.lead_id
        if key in inserted and key not in claimed:
            claimed.add(key)
            result.id, result.lead_status = inserted[key], LeadStatus.RECEIVED
        else:  # already stored, by an earlier request or earlier in this batch
            result.status = IntakeStatus.DUPLICATE
            result.id, result.lead_status = existing.get(key) or (inserted[key], LeadStatus.RECEIVED)
    return results, list(inserted.values())


def _new_lead(source: Source, lead_in: LeadIn) -> Lead:
    now = timezone.now()
    values = lead_in.model_dump()
    values["occurred_at"] = values["occurred_at"] or now
    return Lead(origin=source, received_at=now, status=LeadStatus.RECEIVED, **values)


def _insert_ignoring_duplicates(leads: list[Lead]) -> dict[str, int]:
    """INSERT … ON CONFLICT (origin, lead_id) DO NOTHING RETURNING id, lead_id: {lead_id: id} of new rows."""
    ops = connection.ops
    columns = ", ".join(ops.quote_name(f.column) for f in _INSERT_FIELDS)
    row = "(" + ", ".join(["%s"] * len(_INSERT_FIELDS)) + ")"
    params: list[Any] = []
    for lead in leads:
        params.extend(f.get_db_prep_save(f.pre_save(lead, add=True), connection) for f in _INSERT_FIELDS)
    sql = (
        f"INSERT INTO {ops.quote_name(Lead._meta.db_table)} ({columns}) VALUES {', '.join([row] * len(leads))} "
        f"ON CONFLICT ({ops.quote_name('origin_id')}, {ops.quote_name('lead_id')}) DO NOTHING "
        f"RETURNING {ops.quote_name('id')}, {ops.quote_name('lead_id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {lead_id: pk for pk, lead_id in cursor.fetchall()}
