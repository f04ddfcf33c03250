"""Every API error is JSON: {"detail": sentence, "code": word[, "errors": fields]}."""

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from scheduling.workflow import WorkflowError


def _first_code(codes) -> str:
    if isinstance(codes, str):
        return codes
    if isinstance(codes, dict):
        for value in codes.values():
            return _first_code(value)
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    return "error"


def api_exception_handler(exc, context):
    if isinstance(exc, WorkflowError):
        body = {"detail": exc.detail, "code": exc.code}
        if exc.errors or exc.status_code == 400:
            body["errors"] = exc.errors or {"non_field_errors": [exc.detail]}
        return Response(body, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024
        return Response({"detail": f"The request body is too large (at most {limit} KB).", "code": "too_large"},
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, RecursionError):  # json.loads of absurdly nested input
        return Response({"detail": "JSON parse error - the document is nested too deeply.", "code": "parse_error"},
                        status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        return Response({"detail": "Not found.", "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return Response({"detail": "Invalid input.", "code": "invalid", "errors": errors},
                        status=status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    code = _first_code(exc.get_codes()) if isinstance(exc, exceptions.APIException) else "error"
    response.data = {"detail": str(detail), "code": code}
    return response
