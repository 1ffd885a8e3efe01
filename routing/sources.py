import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from audit.models import AuditAction
from audit.services import audit_record
from routing.models import Source
from routing.text import refused_character


def source_create(*, name: str, by=None, shares_lead_ids: bool = False) -> tuple[Source, str]:
    """Create a capture source; returns it and its token in clear (stored only as a hash). `shares_lead_ids`:
    its lead_ids are shared with other sources that say so (the same id is the same person)."""
    name = name.strip()
    if not name:
        raise ValueError("Give the source a name, e.g. 'website-form'.")
    if refused_character(name):
        raise ValueError(f"name: {refused_character(name)}")
    source = Source(name=name, shares_lead_ids=shares_lead_ids)
    token = source.set_new_token()
    try:
        with transaction.atomic():
            source.save()
            audit_record(
                action=AuditAction.SOURCE_CREATED,
                actor=by,
                outcome="created",
                data={"source": name, "token_prefix": source.token_prefix},
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
