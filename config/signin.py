"""Sign-in throttling with django-axes (docs/security.md, finding 3): the client's address, the lockout answer,
and the same counting and lockout for `Authorization: Token` keys, which axes does not see by itself.

Console and admin logins reach axes through Django's `authenticate()`; API tokens do not, so the token
authentication class asks `token_locked_out` before it looks a key up and reports each unknown key through
`token_failed`. A wrong token counts as a failed sign-in of the pseudo-username `TOKEN_USERNAME` from the
client's address, so token guessing locks that address out of token authentication (not out of the login
form), shows in the admin's access attempts and is lifted like any lockout (`axes_reset_ip ADDRESS` or
`axes_reset_username api-token`).
"""

import time

from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

# Stands in for the username of a failed token sign-in: the key itself is a secret and never stored or logged.
TOKEN_USERNAME = "api-token"
_TOKEN_CREDENTIALS = {"username": TOKEN_USERNAME}
# Addresses with failed token sign-ins inside the cool-off, read at most once a second per process (and at once
# after a failure in this process): intake stays one lookup and one insert for everybody else. Another process
# may take up to a second to see a new lockout, a few more guesses at a 160-bit key.
SUSPECTS_SECONDS = 1.0
_token_suspects: tuple[float, frozenset[str]] | None = None  # (good until, on time.monotonic(); addresses)


def client_address(request: HttpRequest) -> str:
    """The address the request came from. Behind HANDOFF_PROXY_COUNT proxies, the one the outermost of them
    appended to X-Forwarded-For: entries to its left were written by the client and prove nothing."""
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.HANDOFF_PROXY_COUNT
    if not hops:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < hops:
        return remote
    return forwarded[-hops]


def lockout_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_message() -> str:
    return (
        f"Too many failed sign-ins from this address: locked out for {lockout_seconds() // 60} minutes after the "
        "last attempt. An admin can lift it sooner."
    )


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """429 for a locked-out client: JSON under /api/ (as every API error), the lockout page elsewhere."""
    message = lockout_message()
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(lockout_seconds())
    return response


def _addresses_with_token_failures() -> frozenset[str]:
    global _token_suspects
    now = time.monotonic()
    if _token_suspects is None or now >= _token_suspects[0]:
        since = timezone.now() - settings.AXES_COOLOFF_TIME
        found = AccessAttempt.objects.filter(username=TOKEN_USERNAME, attempt_time__gte=since)
        _token_suspects = (now + SUSPECTS_SECONDS, frozenset(found.values_list("ip_address", flat=True)))
    return _token_suspects[1]


def token_locked_out(request: HttpRequest) -> bool:
    """Whether this client address is locked out of token authentication (by earlier wrong keys)."""
    AxesProxyHandler.update_request(request)
    if request.axes_ip_address not in _addresses_with_token_failures():
        return False
    return not AxesProxyHandler.is_allowed(request, _TOKEN_CREDENTIALS)


def token_failed(request: HttpRequest, sender: type) -> None:
    """Count (and log, through axes) a token that matched nothing; locks the address out at the limit."""
    global _token_suspects
    user_login_failed.send(sender=sender, credentials=_TOKEN_CREDENTIALS, request=request)
    _token_suspects = None


class PasswordChangeView(auth_views.PasswordChangeView):
    """Changing one's own password, with a wrong old password counted as a failed sign-in of that person from
    that address: logged by axes and locked out at the same limit as the login form, which a stolen session
    could otherwise use to guess the password without limit."""

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST" and request.user.is_authenticated:
            if not AxesProxyHandler.is_allowed(request, self._credentials()):
                return lockout_response(request)
        return super().dispatch(request, *args, **kwargs)

    def form_invalid(self, form):
        if form.has_error("old_password"):
            user_login_failed.send(sender=type(self), credentials=self._credentials(), request=self.request)
            if not AxesProxyHandler.is_allowed(self.request, self._credentials()):
                return lockout_response(self.request)
        return super().form_invalid(form)

    def _credentials(self) -> dict:
        return {"username": self.request.user.get_username()}
