"""Capture schema versions: which version a posted lead is read as, and how its top-level fields map onto the
lead (README: Capture schema).

A lead may name its version (`schema_version`); otherwise its source's default applies, else the newest
version in effect. A version lists the top-level fields it accepts: the lead's own fields are stored as
themselves, any other listed field under `attributes`. A field outside the version is refused (400 naming
it) or, when the source's policy is `keep`, kept under `attributes` with a warning in the answer.
"""

import datetime as dt
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from routing.conditions import LEAD_FIELDS
from routing.models import SchemaVersion, UnknownFieldPolicy

# Built in, so every database has them from its first migration on (and a flushed test database too):
# 1 is the lead as intake took it before versions (the fields rules read, and attributes); 2 adds the
# canonical event's enrichment_refs.
_VERSION_1 = (*LEAD_FIELDS, "attributes")
# Fields the lead model stores as columns (intake's LeadIn); a version may list others, kept under attributes.
LEAD_COLUMNS = frozenset({*_VERSION_1, "enrichment_refs"})
BUILT_IN = {
    "1": (_VERSION_1, dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "The lead fields intake took before versions."),
    "2": (
        (*_VERSION_1, "enrichment_refs"),
        dt.datetime(2026, 12, 4, tzinfo=dt.UTC),
        "Adds enrichment_refs: records an enrichment system already holds about the lead.",
    ),
}
VERSION_FIELD = "schema_version"
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_FIELDS = 200
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Version:
    """A schema version as intake uses it, precomputed once per cache fill."""

    version: str
    fields: frozenset[str]
    columns: frozenset[str]  # listed fields stored as lead columns
    effective_from: Any
    retires_at: Any

    def allowed_text(self) -> str:
        return ", ".join(sorted(self.fields))


def _version(name: str, fields, effective_from, retires_at) -> Version:
    return Version(
        version=name,
        fields=frozenset(fields),
        columns=frozenset(fields) & LEAD_COLUMNS,
        effective_from=effective_from,
        retires_at=retires_at,
    )


def all_versions() -> list[SchemaVersion]:
    """The built-in versions, then every registered one, oldest first (unsaved rows for the built-in ones)."""
    built_in = [
        SchemaVersion(version=name, fields=list(fields), effective_from=start, notes=notes)
        for name, (fields, start, notes) in BUILT_IN.items()
    ]
    registered = SchemaVersion.objects.exclude(version__in=BUILT_IN).order_by("effective_from", "id")
    return sorted([*built_in, *registered], key=lambda v: v.effective_from)


def version_registered(name: str) -> bool:
    return name in BUILT_IN or SchemaVersion.objects.filter(version=name).exists()


def version_retired(name: str):
    """When a registered version retires (or retired), or None."""
    version = versions_cache.all().get(name)
    return version.retires_at if version is not None else None


def version_names() -> str:
    return ", ".join(v.version for v in all_versions())


class _VersionCache:
    """Every registered version, read once per CACHE_SECONDS per process: intake reads the version of every
    lead, so it must not cost a query each. A change in this process empties it at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loaded_at = -1e9
        self._versions: dict[str, Version] = {}
        self._newest: Version | None = None
        self._newest_until = -1.0  # epoch seconds: the next instant a version takes effect or retires

    def all(self) -> dict[str, Version]:
        if time.monotonic() - self._loaded_at > CACHE_SECONDS:
            with self._lock:
                self._versions = {
                    row.version: _version(row.version, row.fields, row.effective_from, row.retires_at)
                    for row in all_versions()
                }
                self._loaded_at = time.monotonic()
                self._newest_until = -1.0
        return self._versions

    def newest(self) -> Version | None:
        """The newest version in effect: what most leads (naming none, from sources without a default) are read
        as. Worked out again only when the cache is filled or a version's start or retirement has passed."""
        versions = self.all()
        if time.time() >= self._newest_until:
            now = timezone.now()
            live = [v for v in versions.values() if _is_live(v, now)]
            boundaries = [
                moment.timestamp()
                for v in versions.values()
                for moment in (v.effective_from, v.retires_at)
                if moment is not None and moment > now
            ]
            self._newest = max(live, key=lambda v: v.effective_from) if live else None
            self._newest_until = min(boundaries, default=float("inf"))
        return self._newest

    def clear(self) -> None:
        self._loaded_at = -1e9
        self._newest_until = -1.0


versions_cache = _VersionCache()


@receiver([post_save, post_delete], sender=SchemaVersion)
def _version_changed(**kwargs) -> None:
    versions_cache.clear()


def _is_live(version: Version, now) -> bool:
    return version.effective_from <= now and (version.retires_at is None or now < version.retires_at)


def live_versions(now=None) -> list[Version]:
    now = now or timezone.now()
    return [v for v in versions_cache.all().values() if _is_live(v, now)]


def newest_live(now=None) -> Version | None:
    live = live_versions(now)
    return max(live, key=lambda v: v.effective_from) if live else None


class VersionProblem(ValueError):
    """The version a lead names (or its source's default) cannot be used now; the message says which can."""


def _live_text(versions: dict[str, Version], now) -> str:
    return ", ".join(v.version for v in versions.values() if _is_live(v, now)) or "none"


def version_for(requested: Any, *, source_default: str, now=None) -> Version:
    """The version a lead is read as: the one it names, else its source's default, else the newest in effect."""
    now = now or timezone.now()
    versions = versions_cache.all()
    if requested is None:
        if not source_default:
            newest = newest_live(now)
            if newest is None:
                raise VersionProblem("No capture schema version is in effect; ask an admin to register one.")
            return newest
        requested, whose = source_default, "This source's default capture schema version"
    else:
        if isinstance(requested, int) and not isinstance(requested, bool):
            requested = str(requested)
        if not isinstance(requested, str) or not requested.strip():
            raise VersionProblem(
                f'Must be a version name as a string, e.g. "2". Live versions: {_live_text(versions, now)}.'
            )
        requested, whose = requested.strip(), "Capture schema version"
    version = versions.get(requested)
    if version is None:
        raise VersionProblem(f"{whose} {requested!r} is not registered. Live versions: {_live_text(versions, now)}.")
    if now < version.effective_from:
        raise VersionProblem(
            f"{whose} {requested!r} takes effect at {version.effective_from:%Y-%m-%dT%H:%M:%SZ}. "
            f"Live versions: {_live_text(versions, now)}."
        )
    if version.retires_at is not None and now >= version.retires_at:
        raise VersionProblem(
            f"{whose} {requested!r} was retired at {version.retires_at:%Y-%m-%dT%H:%M:%SZ}. "
            f"Live versions: {_live_text(versions, now)}."
        )
    return version


@dataclass
class Shaped:
    """A posted lead split by its schema version: what intake validates as the lead, the version it was read
    as, what intake refuses before validation and what it tells the sender it kept."""

    lead: dict
    version: str = ""
    errors: dict[str, list[str]] | None = None
    warnings: dict[str, list[str]] | None = None


def unknown_field_message(version: Version) -> str:
    return f"Unknown field. Allowed fields (capture schema version {version.version}): {version.allowed_text()}."


def lead_shape(payload: dict, *, source_default: str, policy: str, now=None) -> Shaped:
    """Split one posted lead (a dict) by its schema version. The lead's own fields pass through; listed
    custom fields and (under `keep`) unknown ones move into its attributes."""
    requested = payload.get(VERSION_FIELD)
    if requested is None and not source_default and now is None:
        version = versions_cache.newest()  # the common case, without a clock read per lead
        if version is None:
            return Shaped(lead={}, errors={VERSION_FIELD: ["No capture schema version is in effect."]})
    else:
        try:
            version = version_for(requested, source_default=source_default, now=now)
        except VersionProblem as problem:
            return Shaped(lead={}, errors={VERSION_FIELD: [str(problem)]})
    if VERSION_FIELD not in payload and payload.keys() <= version.columns:
        return Shaped(lead=payload, version=version.version)  # the common case: nothing to move
    lead: dict = {}
    to_attributes: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    warnings: dict[str, list[str]] = {}
    for name, value in payload.items():
        if name == VERSION_FIELD:
            continue
        if name in version.columns:
            lead[name] = value
        elif name in version.fields:
            to_attributes[name] = value
        elif policy == UnknownFieldPolicy.KEEP:
            to_attributes[name] = value
            warnings[name] = [
                f"Not in capture schema version {version.version}; kept as attributes.{name}. "
                "Register a new version to make it a field."
            ]
        else:
            errors[name] = [unknown_field_message(version)]
    if to_attributes:
        attributes = lead.get("attributes")
        if attributes is None:
            attributes = {}
        if isinstance(attributes, dict):  # otherwise intake's own check says what is wrong with it
            for name in to_attributes.keys() & attributes.keys():
                errors[name] = [f"Sent both as a top-level field and as attributes.{name}; send it once."]
            lead["attributes"] = {**attributes, **to_attributes}
    return Shaped(lead=lead, version=version.version, errors=errors or None, warnings=warnings or None)


def fields_problem(fields: Any) -> str:
    """Why a new version's field list cannot be registered, or ""."""
    if not isinstance(fields, list) or not all(isinstance(name, str) for name in fields):
        return "Give the fields as a JSON list of names."
    if len(fields) > MAX_FIELDS:
        return f"{len(fields)} fields; a version lists at most {MAX_FIELDS}."
    bad = [name for name in fields if not FIELD_NAME.fullmatch(name)]
    if bad:
        return f"Field names are lower-case letters, digits and _, starting with a letter: {', '.join(bad[:5])}."
    if len(set(fields)) != len(fields):
        return "A field is listed twice."
    if "lead_id" not in fields:
        return "Every version carries lead_id."
    if VERSION_FIELD in fields:
        return "schema_version is always allowed; do not list it."
    return ""
