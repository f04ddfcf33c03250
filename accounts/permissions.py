from rest_framework.permissions import BasePermission

from .models import User


class IsOperator(BasePermission):
    message = "Only operators can do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.role == User.Role.OPERATOR)


class IsTherapist(BasePermission):
    message = "Only therapists can do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.role == User.Role.THERAPIST)


class IsStaffMember(BasePermission):
    """Any active operator or therapist (the default for the API)."""

    message = "Your account cannot use this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.role in User.Role.values)


class ReadAnyWriteOperator(BasePermission):
    message = "Only operators can change this."

    def has_permission(self, request, view) -> bool:
        if not IsStaffMember().has_permission(request, view):
            return False
        return request.method in ("GET", "HEAD", "OPTIONS") or request.user.role == User.Role.OPERATOR
