"""Token login, the caller's own account and therapist accounts (operators)."""

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.generics import ListCreateAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from .models import User
from .permissions import IsOperator, IsStaffMember
from .validators import no_control_characters


def therapist_json(user: User) -> dict:
    return {
        "id": user.id,
        "username": user.username,
        "name": user.display_name,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "phone": user.phone,
        "role": user.role,
        "is_active": user.is_active,
        "disabled_at": user.disabled_at.isoformat() if user.disabled_at else None,
        "disabled_reason": user.disabled_reason,
    }


class AccountSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="display_name", read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "name", "first_name", "last_name", "phone", "role", "is_active",
                  "disabled_at", "disabled_reason"]
        read_only_fields = fields


class TherapistCreateSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    first_name = serializers.CharField(max_length=150, validators=[no_control_characters])
    last_name = serializers.CharField(max_length=150, validators=[no_control_characters])
    phone = serializers.RegexField(r"^\+?[0-9 ()\-]{5,32}$", max_length=32, required=False, allow_blank=True)

    class Meta:
        model = User
        fields = ["id", "username", "password", "first_name", "last_name", "phone"]

    def validate(self, attrs):
        validate_password(attrs["password"], User(username=attrs["username"], first_name=attrs["first_name"],
                                                  last_name=attrs["last_name"]))
        return attrs

    def create(self, validated_data):
        return User.objects.create_user(role=User.Role.THERAPIST, **validated_data)

    def to_representation(self, instance):
        return therapist_json(instance)


class TokenView(APIView):
    """Exchange a username and password for an API token (throttled)."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [ScopedRateThrottle]
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
        user = authenticate(request, username=username[:150], password=password[:128])
        if user is None:
            raise AuthenticationFailed("Wrong username or password.")
        if not user.is_active:
            raise PermissionDenied(f"This account is disabled: {user.disabled_reason or 'ask an operator'}.")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class MeView(APIView):
    permission_classes = [IsStaffMember]

    @extend_schema(responses=AccountSerializer)
    def get(self, request):
        return Response(AccountSerializer(request.user).data)


class TherapistListCreateView(ListCreateAPIView):
    permission_classes = [IsOperator]
    serializer_class = TherapistCreateSerializer

    def get_queryset(self):
        qs = User.objects.filter(role=User.Role.THERAPIST)
        active = self.request.query_params.get("is_active")
        if active in ("true", "false"):
            qs = qs.filter(is_active=active == "true")
        return qs.order_by("first_name", "last_name", "id")

    @extend_schema(responses=AccountSerializer(many=True))
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([therapist_json(u) for u in page])

    def create(self, request, *args, **kwargs):
        response = super().create(request, *args, **kwargs)
        response.status_code = status.HTTP_201_CREATED
        return response
