"""Personal API tokens (issue 15, finding 7): made with an expiry, stored as a hash, shown once, revoked by
their owner or an admin. `TokenAuthentication` (routing/api/auth.py) asks `personal_token_check`."""

import datetime as dt

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from routing.models import PersonalToken, Source

# last_used_at is written at most this often per token, so an API client does not cost a write per request.
LAST_USED_RESOLUTION = dt.timedelta(hours=1)


class TokenRefused(Exception):
    """Why a token does not authenticate, worded for the API client."""


def personal_token_create(*, user, name: str = "", days: int | None = None, at=None) -> tuple[PersonalToken, str]:
    """Make a token for `user`, valid `days` (default HANDOFF_API_TOKEN_DAYS, at most API_TOKEN_MAX_DAYS);
    returns it and the token in clear, which is never seen again."""
    now = at or timezone.now()
    days = settings.HANDOFF["API_TOKEN_DAYS"] if days is None else days
    if not 1 <= days <= settings.HANDOFF["API_TOKEN_MAX_DAYS"]:
        raise ValueError(f"A token lasts from 1 to {settings.HANDOFF['API_TOKEN_MAX_DAYS']} days, not {days}.")
    token = PersonalToken(user=user, name=name, created_at=now, expires_at=now + dt.timedelta(days=days))
    clear = token.set_new_token()
    token.save()
    return token, clear


def personal_token_revoke(*, token: PersonalToken, by, at=None) -> bool:
    """Revoke it (once: a second revoke changes nothing). True when this call revoked it."""
    now = at or timezone.now()
    revoked = PersonalToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now, revoked_by=by)
    token.refresh_from_db()
    return revoked == 1


def personal_token_check(key: str, *, now=None) -> PersonalToken | None:
    """The token with this key if it may be used now; None when no token has it (it may be a source's);
    TokenRefused when it exists but is revoked, expired or its person is deactivated."""
    now = now or timezone.now()
    token = PersonalToken.objects.select_related("user").filter(token_hash=Source.hash_token(key)).first()
    if token is None:
        return None
    if token.revoked_at is not None or not token.user.is_active:
        raise TokenRefused("Invalid or revoked token.")
    if token.expires_at <= now:
        raise TokenRefused(
            f"This token expired on {token.expires_at:%Y-%m-%d}; make a new one on the console's API tokens page."
        )
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        PersonalToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def personal_tokens_of(*, user) -> QuerySet:
    return PersonalToken.objects.filter(user=user).select_related("revoked_by")
