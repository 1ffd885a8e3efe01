import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from audit.models import AuditAction
from audit.services import audit_record
from routing.intake_schema import version_names, version_registered
from routing.models import Source, UnknownFieldPolicy
from routing.text import refused_character


def source_create(
    *,
    name: str,
    by=None,
    shares_lead_ids: bool = False,
    owner_username: str = "",
    schema_version: str = "",
    keep_unknown_fields: bool = False,
) -> tuple[Source, str]:
    """Create a capture source; returns it and its token in clear (stored only as a hash). `shares_lead_ids`:
    its lead_ids are shared with other sources that say so (the same id is the same person). Its owner answers
    for its capture schema; its leads are read under `schema_version` (blank: the newest in effect)."""
    name = name.strip()
    if not name:
        raise ValueError("Give the source a name, e.g. 'website-form'.")
    if refused_character(name):
        raise ValueError(f"name: {refused_character(name)}")
    owner = None
    if owner_username:
        owner = get_user_model().objects.filter(username=owner_username, is_active=True).first()
        if owner is None:
            raise ValueError(f"No active user {owner_username!r} to own the source.")
    if schema_version and not version_registered(schema_version):
        known = version_names()
        raise ValueError(f"No capture schema version {schema_version!r}; registered: {known}.")
    source = Source(
        name=name,
        shares_lead_ids=shares_lead_ids,
        owner=owner,
        schema_version=schema_version,
        unknown_fields=UnknownFieldPolicy.KEEP if keep_unknown_fields else UnknownFieldPolicy.REJECT,
    )
    token = source.set_new_token()
    try:
        with transaction.atomic():
            source.save()
            audit_record(
                action=AuditAction.SOURCE_CREATED,
                actor=by,
                outcome="created",
                data={
                    "source": name,
                    "token_prefix": source.token_prefix,
                    "owner": owner_username,
                    "schema_version": schema_version,
                    "unknown_fields": source.unknown_fields,
                },
            )
    except IntegrityError:
        raise ValueError(f"A source named {name!r} exists already.") from None
    return source, token


class ActiveSourceCache:
    """Active sources by token hash, kept per process for `SOURCE_TOKEN_CACHE_SECONDS`: otherwise every intake
    request pays a query for its token. A change to a source in this process empties the cache at once; other
    processes stop taking a revoked token within the cache time. Unknown tokens are never cached, so a wrong
    token always costs the lookup."""

    MAX_ENTRIES = 1000

    def __init__(self):
        self._entries: dict[str, tuple[Source, float]] = {}

    def source(self, token: str) -> Source | None:
        """The source with this token (an inactive one too, so the caller can say 'revoked'), or None."""
        token_hash = Source.hash_token(token)
        entry = self._entries.get(token_hash)
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        source = Source.objects.filter(token_hash=token_hash).first()
        if source is not None and source.is_active:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[token_hash] = (source, time.monotonic() + settings.HANDOFF["SOURCE_TOKEN_CACHE_SECONDS"])
        return source

    def clear(self) -> None:
        self._entries.clear()


active_sources = ActiveSourceCache()


@receiver([post_save, post_delete], sender=Source)
def _source_changed(**kwargs) -> None:
    active_sources.clear()
