"""Capture sources and people authenticate with `Authorization: Token <key>`; only the key's hash is stored
for either (routing/sources.py, routing/tokens.py)."""

from rest_framework import authentication, exceptions, permissions

from config.signin import lockout_message, lockout_seconds, token_failed, token_locked_out
from exceptions.permissions import has_console_access
from routing.models import Source
from routing.sources import active_sources
from routing.tokens import TokenRefused, personal_token_check


class SourcePrincipal:
    """request.user for a capture source: authenticated, but not a person and never staff."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, source: Source):
        self.source = source

    def __str__(self):
        return f"source:{self.source.name}"

    def has_perm(self, perm, obj=None):
        return False


class TokenLockedOut(exceptions.APIException):
    """429 with Retry-After (DRF sets it from `wait`), worded as the login form's lockout."""

    status_code = 429

    def __init__(self):
        super().__init__(lockout_message())
        self.wait = lockout_seconds()


class TokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <key>`: a capture source's token (only its hash is stored), or a person's API
    token (made on the console's API tokens page or with `manage.py create_api_token USERNAME`; only its hash
    is stored, and it expires) for the console's API. Wrong keys count as failed sign-ins of the client's
    address, which is locked out at the limit like a login (config/signin.py)."""

    keyword = "Token"

    def authenticate(self, request):
        scheme = authentication.get_authorization_header(request).split()[:1]
        if [word.lower() for word in scheme] == [self.keyword.lower().encode()] and token_locked_out(request._request):
            # Even the right key is refused while locked out: otherwise guessing would simply go on.
            raise TokenLockedOut()
        try:
            return self._authenticate(request)
        except exceptions.AuthenticationFailed:
            token_failed(request._request, sender=type(self))
            raise

    def _authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: use 'Authorization: Token <key>'.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token: it must be plain ASCII.") from None
        source = active_sources.source(key)
        if source is not None:
            if not source.is_active:
                raise exceptions.AuthenticationFailed("Invalid or revoked token.")
            return SourcePrincipal(source), source
        try:
            person = personal_token_check(key)
        except TokenRefused as refused:
            raise exceptions.AuthenticationFailed(str(refused)) from None
        if person is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        return person.user, person

    def authenticate_header(self, request):
        return self.keyword


class IsCaptureSource(permissions.BasePermission):
    message = "Only capture sources post leads: authenticate with 'Authorization: Token <key>'."

    def has_permission(self, request, view):
        return isinstance(request.auth, Source)


class IsSourceOrStaff(permissions.BasePermission):
    """A source reads its own leads (the view narrows the queryset); console people (ops, rule owners,
    admins) read all."""

    message = "Reading leads needs a capture-source token or a console account (ops or rule_owners group)."

    def has_permission(self, request, view):
        if isinstance(request.auth, Source):
            return True
        return has_console_access(request.user)
