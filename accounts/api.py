"""Token login, the caller's own account and therapist accounts (operators)."""

import logging

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.generics import ListCreateAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from .authentication import AccountDisabled
from .fields import StrictCharField, StrictRegexField
from .forms import SignInGuard
from .models import User
from .permissions import IsOperator, IsStaffMember, IsTherapist
from .validators import no_control_characters

logger = logging.getLogger(__name__)


def therapist_json(user: User) -> dict:
    return {
        "id": user.id,
        "username": user.username,
        "name": user.display_name,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "phone": user.phone,
        "email": user.email,
        "role": user.role,
        "is_active": user.is_active,
        "disabled_at": user.disabled_at.isoformat() if user.disabled_at else None,
        "disabled_reason": user.disabled_reason,
        # Whether the therapist set up a calendar feed; never its address.
        "has_calendar_feed": user.has_calendar_feed,
    }


def calendar_url(request, user: User) -> str | None:
    """The therapist's secret calendar feed address (routed by guitara/urls.py)."""
    if not user.calendar_secret:
        return None
    return request.build_absolute_uri(reverse("calendar-feed", kwargs={"secret": user.calendar_secret}))


class AccountSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="display_name", read_only=True)
    email = serializers.CharField(read_only=True, help_text="Empty when none is set.")
    calendar_url = serializers.SerializerMethodField(
        help_text="A therapist's secret calendar feed address (iCalendar); null until they create one.")

    class Meta:
        model = User
        fields = ["id", "username", "name", "first_name", "last_name", "phone", "email", "role", "is_active",
                  "disabled_at", "disabled_reason", "calendar_url"]
        read_only_fields = fields

    def get_calendar_url(self, user) -> str | None:
        return calendar_url(self.context["request"], user) if user.is_therapist else None


class TherapistSerializer(AccountSerializer):
    """A therapist as operators see them: whether they have a calendar feed, never its address."""

    calendar_url = None
    has_calendar_feed = serializers.BooleanField(read_only=True)

    class Meta(AccountSerializer.Meta):
        fields = [f for f in AccountSerializer.Meta.fields if f != "calendar_url"] + ["has_calendar_feed"]
        read_only_fields = fields


class TherapistCreateSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    first_name = StrictCharField(max_length=150, validators=[no_control_characters])
    last_name = StrictCharField(max_length=150, validators=[no_control_characters])
    phone = StrictRegexField(r"^\+?[0-9 ()\-]{5,32}$", max_length=32, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True,
                                   help_text="Where the reminder of an unseen offer is sent.")

    class Meta:
        model = User
        fields = ["id", "username", "password", "first_name", "last_name", "phone", "email"]

    def validate(self, attrs):
        try:
            validate_password(attrs["password"], User(username=attrs["username"], first_name=attrs["first_name"],
                                                      last_name=attrs["last_name"]))
        except DjangoValidationError as exc:
            # Report it on the password field, not as a non-field error.
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs

    def create(self, validated_data):
        return User.objects.create_user(role=User.Role.THERAPIST, **validated_data)

    def to_representation(self, instance):
        return therapist_json(instance)


class LoginRateThrottle(ScopedRateThrottle):
    """The per-address rate of the token endpoint; like the lockout it fails open
    when the cache (Redis) cannot be reached, rather than failing the sign-in."""

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # noqa: BLE001 - an unreachable cache must not block sign-in
            logger.warning("login throttle unavailable (cache failed): %s", exc)
            return True


def _locked(message: str, seconds: float) -> Throttled:
    exc = Throttled(detail=message)
    exc.wait = max(1, int(seconds))  # becomes the Retry-After header
    return exc


class TokenView(APIView):
    """Exchange a username and password for an API token.

    Throttled per address (scope "login"), and locked for a while after repeated
    failures for one username from one address (see accounts.forms.SignInGuard):
    429 {"detail": "Too many failed sign-in attempts. Try again in N minutes.",
    "code": "throttled"}."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [LoginRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        request=inline_serializer("TokenRequest", {"username": serializers.CharField(),
                                                   "password": serializers.CharField()}),
        responses=inline_serializer("TokenResponse", {"token": serializers.CharField()}),
    )
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise serializers.ValidationError({"username": ["Username and password are required."]})
        if "\x00" in username or "\x00" in password:
            raise serializers.ValidationError({"username": ["Null characters are not allowed."]})
        guard = SignInGuard.for_request(request, username)
        seconds = guard.seconds_locked()
        if seconds > 0:
            raise _locked(guard.locked_message() or "", seconds)
        user = authenticate(request, username=username[:150], password=password[:128])
        if user is None:
            message = guard.failed()
            if message:
                raise _locked(message, guard.seconds_locked())
            raise AuthenticationFailed("Wrong username or password.")
        guard.succeeded()
        if not user.is_active:
            raise AccountDisabled(user)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    def get_authenticate_header(self, request):
        # Wrong credentials answer 401 (not DRF's 403 for views without authenticators).
        return "Token"


class MeView(APIView):
    permission_classes = [IsStaffMember]

    @extend_schema(responses=AccountSerializer)
    def get(self, request):
        return Response(AccountSerializer(request.user, context={"request": request}).data)


class CalendarRotateView(APIView):
    """A new secret calendar feed address for the calling therapist (the first one,
    or a replacement: the old address answers 404 at once)."""

    permission_classes = [IsTherapist]

    @extend_schema(request=None, responses=inline_serializer("CalendarUrl", {"calendar_url": serializers.URLField()}))
    def post(self, request):
        request.user.rotate_calendar_secret()
        return Response({"calendar_url": calendar_url(request, request.user)})


class TherapistListCreateView(ListCreateAPIView):
    permission_classes = [IsOperator]
    serializer_class = TherapistCreateSerializer

    def get_queryset(self):
        qs = User.objects.filter(role=User.Role.THERAPIST)
        active = self.request.query_params.get("is_active")
        if active in ("true", "false"):
            qs = qs.filter(is_active=active == "true")
        return qs.order_by("first_name", "last_name", "id")

    @extend_schema(responses=TherapistSerializer(many=True))
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([therapist_json(u) for u in page])

    @extend_schema(request=TherapistCreateSerializer, responses={201: TherapistSerializer})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def create(self, request, *args, **kwargs):
        response = super().create(request, *args, **kwargs)
        response.status_code = status.HTTP_201_CREATED
        return response
