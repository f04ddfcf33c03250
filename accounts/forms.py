from django import forms
from django.contrib.auth.forms import AuthenticationForm


class LoginForm(AuthenticationForm):
    """Says plainly why a disabled account cannot sign in, once the password matched."""

    def confirm_login_allowed(self, user):
        if not user.is_active:
            reason = user.disabled_reason or "no reason was recorded"
            raise forms.ValidationError(
                f"This account is disabled ({reason}). Ask an operator to re-enable it.", code="inactive")
