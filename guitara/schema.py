"""Documents the error responses every endpoint can give, in one place."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A sentence a person can read.")
    code = serializers.CharField(help_text="A stable word, e.g. invalid_transition, deadline_passed.")


class ValidationErrorSerializer(ErrorSerializer):
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text="Field errors as DRF gives them (absent for a malformed body).")


class AccountsSessionScheme(SessionScheme):
    """accounts.authentication.SessionAuthentication is DRF's (plus the account_disabled
    rule): documented as the same cookie scheme. (The token scheme matches subclasses already.)"""

    target_class = "accounts.authentication.SessionAuthentication"


class AutoSchema(BaseAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = {
            "401": ("No login, or an invalid token.", ErrorSerializer),
            "403": ("Wrong role, or the account is disabled (code account_disabled, saying why and since when).",
                    ErrorSerializer),
            "404": ("Not found, or not yours.", ErrorSerializer),
            "429": ("Throttled.", ErrorSerializer),
        }
        if self.method in ("POST", "PUT", "PATCH", "DELETE") or self.view.__class__.__name__ in (
                "AppointmentViewSet", "EventFeedView", "InsightsView", "DayBoardView"):
            errors["400"] = ("Invalid input.", ValidationErrorSerializer)
        if self.method in ("POST", "PATCH", "DELETE"):
            errors["409"] = ("Wrong state: invalid_transition, deadline_passed, therapist_unavailable, "
                             "already_reviewed, too_early.", ErrorSerializer)
        for code, (description, serializer) in errors.items():
            if code not in responses:
                response = self._get_response_for_code(OpenApiResponse(serializer, description), code)
                # Errors are always JSON, whatever else the view can render (e.g. CSV).
                content = response.get("content", {})
                if "application/json" in content:
                    response["content"] = {"application/json": content["application/json"]}
                responses[code] = response
        return responses
