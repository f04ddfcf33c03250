"""The API's two ways in (session + CSRF for browsers, token for scripts), with
one rule for disabled accounts on both: 403 `account_disabled`, saying why and
since when, instead of "Authentication credentials were not provided."

A disabled therapist keeps their session (AllowAllUsersModelBackend), so their
page can explain itself; here every API call of a disabled account, whichever
way it signs in, is refused before any view runs.
"""

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from . import formatting
from .prepared import Prepared


def disabled_detail(user) -> str:
    """ "Your account was disabled at 2:32 PM: no response to appointment #42 … by 2:30 PM.
    Ask an operator to re-enable it." """
    reason = (user.disabled_reason or "").strip().rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    since = f" at {formatting.when(user.disabled_at)}" if user.disabled_at else ""
    return f"Your account was disabled{since}" + (f": {reason}." if reason else ".") + \
        " Ask an operator to re-enable it."


class AccountDisabled(exceptions.PermissionDenied):
    default_code = "account_disabled"

    def __init__(self, user):
        super().__init__(detail=disabled_detail(user), code=self.default_code)


class SessionAuthentication(authentication.SessionAuthentication):
    def authenticate(self, request):
        user = getattr(request._request, "user", None)
        if user is not None and user.is_authenticated and not user.is_active:
            raise AccountDisabled(user)
        return super().authenticate(request)


# Every token request's look-up: its SQL is built once (accounts.prepared).
_TOKEN = Prepared(lambda key: Token.objects.select_related("user").filter(key=key)[:1], key="\x01placeholder")


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        found = _TOKEN.fetch(key=str(key))
        if not found:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token = found[0]
        if not token.user.is_active:
            raise AccountDisabled(token.user)
        return token.user, token
