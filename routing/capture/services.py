"""Registering capture schema versions, and what the schema-versions API and screens show of them."""

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from routing.capture.models import SchemaVersion
from routing.intake_schema import (
    LEAD_COLUMNS,
    all_versions,
    fields_problem,
    newest_live,
    version_registered,
    versions_cache,
)
from routing.models import Source
from routing.text import refused_character


class SchemaVersionRefused(ValueError):
    """The version cannot be registered; `errors` says what to fix, field by field."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))


def schema_version_register(
    *,
    version: str,
    fields: list,
    effective_from: dt.datetime,
    retires_at: dt.datetime | None = None,
    notes: str = "",
    by=None,
) -> SchemaVersion:
    """Register a new version of the canonical lead event. It cannot be changed afterwards (register another);
    it may take effect now or later, never in the past, so no lead already stored was read under it."""
    errors = schema_version_problems(
        version=version, fields=fields, effective_from=effective_from, retires_at=retires_at
    )
    if errors:
        raise SchemaVersionRefused(errors)
    version, now = version.strip(), timezone.now()
    try:
        with transaction.atomic():
            registered = SchemaVersion.objects.create(
                version=version,
                fields=list(fields),
                effective_from=max(effective_from, now),
                retires_at=retires_at,
                notes=(notes or "")[:2000],
                created_by=by,
            )
            audit_record(
                action=AuditAction.SCHEMA_VERSION_REGISTERED,
                actor=by,
                outcome="registered",
                data={"version": version, "fields": list(fields), "effective_from": registered.effective_from},
            )
    except IntegrityError:
        raise SchemaVersionRefused({"version": [f"Version {version!r} is registered already."]}) from None
    versions_cache.clear()
    return registered


def schema_version_problems(*, version, fields, effective_from, retires_at) -> dict[str, list[str]]:
    """What is wrong with a version to register, field by field ({} when nothing)."""
    errors: dict[str, list[str]] = {}
    version = version.strip() if isinstance(version, str) else ""
    if not version or len(version) > 32 or refused_character(version) or not version.isprintable():
        errors["version"] = ["Give a short version name (at most 32 printable characters), e.g. 3 or 2027-01."]
    elif version_registered(version):
        errors["version"] = [f"Version {version!r} is registered already."]
    if problem := fields_problem(fields):
        errors["fields"] = [problem]
    if effective_from is None or effective_from.tzinfo is None:
        errors["effective_from"] = ["Give the instant it takes effect, with its zone, e.g. 2027-01-01T00:00:00Z."]
    elif effective_from < timezone.now() - dt.timedelta(minutes=1):
        errors["effective_from"] = ["It may take effect now or later, not in the past."]
    if retires_at is not None and (effective_from is None or retires_at <= effective_from):
        errors["retires_at"] = ["Retire it after it takes effect."]
    if not errors:
        if problem := _dropped_fields_problem(fields, effective_from):
            errors["fields"] = [problem]
    return errors


def _dropped_fields_problem(fields: list, effective_from: dt.datetime) -> str:
    """A version that leaves out fields the newest takes becomes, from its start, what every source without a
    default version is read as: those sources would start refusing the fields. Refused until they are pinned."""
    newest = newest_live()
    if newest is None or effective_from < newest.effective_from:
        return ""
    dropped = sorted(newest.fields - set(fields))
    unpinned = list(
        Source.objects.filter(is_active=True, schema_version="").order_by("name").values_list("name", flat=True)
    )
    if not dropped or not unpinned:
        return ""
    return (
        f"It leaves out {', '.join(dropped)}, which version {newest.version} (the newest) takes. From its start, "
        f"sources without a default version ({', '.join(unpinned[:10])}{', …' if len(unpinned) > 10 else ''}) "
        f"would be read as this one and refuse those fields: pin them to version {newest.version} first "
        "(admin → Sources), or keep the fields."
    )


def schema_version_retire_problem(version: SchemaVersion, retires_at: dt.datetime | None) -> str:
    """Why a registered version cannot retire at `retires_at` ("" when it can): not before it takes effect, not
    in the past, and not while an active source reads its leads as it by default."""
    if retires_at is None:
        return ""
    if retires_at <= version.effective_from:
        return "Retire it after it takes effect."
    if retires_at < timezone.now() - dt.timedelta(minutes=1):
        return "Retire it now or later, not in the past (leads were read under it)."
    pinned = list(Source.objects.filter(is_active=True, schema_version=version.version).values_list("name", flat=True))
    if pinned:
        return f"Sources read their leads as this version by default: {', '.join(pinned)}. Move them first."
    return ""


def schema_version_retire(*, version: SchemaVersion, retires_at: dt.datetime | None, by) -> SchemaVersion:
    if problem := schema_version_retire_problem(version, retires_at):
        raise SchemaVersionRefused({"retires_at": [problem]})
    with transaction.atomic():
        version.retires_at = retires_at
        version.save(update_fields=["retires_at"])
        audit_record(
            action=AuditAction.CONFIG_CHANGED,
            actor=by,
            outcome="schema version retirement set" if retires_at else "schema version retirement cleared",
            data={"schema_version": version.version, "retires_at": retires_at},
        )
    versions_cache.clear()
    return version


def schema_versions_described(*, source: Source | None = None, now=None) -> dict:
    """Every registered version with whether it is live, which fields are stored under attributes, and which
    version a lead naming none is read as (for this source, when one asks)."""
    now = now or timezone.now()
    versions = all_versions()
    live = [v for v in versions if v.effective_from <= now and (v.retires_at is None or now < v.retires_at)]
    newest = max(live, key=lambda v: v.effective_from).version if live else None
    described = {
        "versions": [
            {
                "version": v.version,
                "fields": v.fields,
                "kept_under_attributes": sorted(set(v.fields) - LEAD_COLUMNS),
                "effective_from": v.effective_from,
                "retires_at": v.retires_at,
                "live": v in live,
                "notes": v.notes,
            }
            for v in versions
        ],
        "newest_live": newest,
    }
    if source is not None:
        described["source"] = {
            "name": source.name,
            "default_version": source.schema_version or newest,
            "unknown_fields": source.unknown_fields,
        }
    return described
