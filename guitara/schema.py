"""Documents the error responses every endpoint can give, in one place."""

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A sentence a person can read.")
    code = serializers.CharField(help_text="A stable word, e.g. invalid_transition, deadline_passed.")


class ValidationErrorSerializer(ErrorSerializer):
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text="Field errors as DRF gives them (absent for a malformed body).")


class AutoSchema(BaseAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = {
            "401": ("No login, or an invalid token.", ErrorSerializer),
            "403": ("Wrong role, or the account is disabled.", ErrorSerializer),
            "404": ("Not found, or not yours.", ErrorSerializer),
            "429": ("Throttled.", ErrorSerializer),
        }
        if self.method in ("POST", "PUT", "PATCH", "DELETE") or self.view.__class__.__name__ in (
                "AppointmentViewSet", "EventFeedView", "DayBoardView"):
            errors["400"] = ("Invalid input.", ValidationErrorSerializer)
        if self.method in ("POST", "PATCH", "DELETE"):
            errors["409"] = ("Wrong state: invalid_transition, deadline_passed, therapist_unavailable, "
                             "already_reviewed.", ErrorSerializer)
        for code, (description, serializer) in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(OpenApiResponse(serializer, description), code)
        return responses
