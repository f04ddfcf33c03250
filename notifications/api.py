import base64
import binascii

from django.conf import settings
from django.db.models import F
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import get_object_or_404
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsStaffMember, IsTherapist

from . import push
from .delivery import unread_count
from .models import Notification, PushSubscription
from .payloads import notification_json


class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    message = serializers.CharField()
    appointment = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)
    is_read = serializers.BooleanField()


class NotificationPagination(PageNumberPagination):
    page_size = 30
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["unread"] = self.unread
        return response


class NotificationListView(APIView):
    """My notifications, unread first, then newest first; plus the unread count."""

    permission_classes = [IsStaffMember]

    @extend_schema(
        parameters=[OpenApiParameter("page", int, description="A page number within the paginated result set."),
                    OpenApiParameter("page_size", int, description="Results per page (at most 100).")],
        responses=inline_serializer("PaginatedNotificationList", {
            "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True), "unread": serializers.IntegerField(),
            "results": NotificationSerializer(many=True)}),
    )
    def get(self, request):
        qs = Notification.objects.filter(recipient=request.user).order_by(
            F("read_at").asc(nulls_first=True), "-created_at", "-id")
        paginator = NotificationPagination()
        paginator.unread = unread_count(request.user.id)
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([notification_json(n) for n in page])


class NotificationReadView(APIView):
    permission_classes = [IsStaffMember]

    @extend_schema(request=None, responses=inline_serializer(
        "NotificationRead", {"notification": NotificationSerializer(), "unread": serializers.IntegerField()}))
    def post(self, request, pk: int):
        notification = get_object_or_404(Notification, pk=pk, recipient=request.user)
        if notification.read_at is None:
            notification.read_at = timezone.now()
            notification.save(update_fields=["read_at"])
        return Response({"notification": notification_json(notification), "unread": unread_count(request.user.id)})


class NotificationReadAllView(APIView):
    permission_classes = [IsStaffMember]

    @extend_schema(request=None, responses=inline_serializer(
        "NotificationReadAll", {"marked": serializers.IntegerField(), "unread": serializers.IntegerField()}))
    def post(self, request):
        marked = Notification.objects.filter(recipient=request.user, read_at__isnull=True).update(
            read_at=timezone.now())
        return Response({"marked": marked, "unread": 0})


# --- Web Push: the key and this device's subscription ------------------------------


class PushKeyView(APIView):
    """The VAPID public key a device subscribes with; null while push is off."""

    permission_classes = [IsTherapist]

    @extend_schema(responses=inline_serializer("PushKey", {"public_key": serializers.CharField(allow_null=True)}))
    def get(self, request):
        return Response({"public_key": settings.VAPID_PUBLIC_KEY if push.enabled() else None})


def _b64url_bytes(value: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


class PushKeysSerializer(serializers.Serializer):
    p256dh = serializers.CharField(max_length=200)
    auth = serializers.CharField(max_length=100)

    def validate_p256dh(self, value):
        raw = _b64url_bytes(value)
        if raw is None or len(raw) != 65 or raw[0] != 4:
            raise serializers.ValidationError("Must be the device's P-256 public key in base64url.")
        return value

    def validate_auth(self, value):
        raw = _b64url_bytes(value)
        if raw is None or len(raw) != 16:
            raise serializers.ValidationError("Must be the device's 16-byte auth secret in base64url.")
        return value


@extend_schema_field(PushKeysSerializer)
class PushKeysField(serializers.Field):
    """The keys object, its errors given as sentences on `keys` (error lists stay flat)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be an object with p256dh and auth.")
        keys = PushKeysSerializer(data=data)
        if not keys.is_valid():
            raise serializers.ValidationError(
                [f"{name}: {' '.join(str(m) for m in messages)}" for name, messages in keys.errors.items()])
        return keys.validated_data


class PushSubscriptionSerializer(serializers.Serializer):
    """What the browser's PushSubscription.toJSON() gives (expirationTime is ignored)."""

    endpoint = serializers.CharField(max_length=2000)
    keys = PushKeysField()

    def validate_endpoint(self, value):
        try:
            push.check_endpoint(value)
        except push.EndpointRefused as exc:
            raise serializers.ValidationError(str(exc), code="endpoint_refused") from None
        return value


class PushSubscriptionOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    endpoint = serializers.CharField()
    created_at = serializers.DateTimeField()


class PushSubscriptionView(APIView):
    """POST: this device's subscription for the caller (a device that subscribed for
    someone else before now gets the caller's pushes). DELETE ?endpoint=: remove one
    of the caller's own."""

    permission_classes = [IsTherapist]

    @extend_schema(request=PushSubscriptionSerializer, responses={200: PushSubscriptionOutSerializer,
                                                                   201: PushSubscriptionOutSerializer})
    def post(self, request):
        serializer = PushSubscriptionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        subscription, created = push.subscribe(
            request.user, endpoint=data["endpoint"], p256dh=data["keys"]["p256dh"], auth=data["keys"]["auth"],
            user_agent=request.headers.get("User-Agent", ""))
        body = {"id": subscription.id, "endpoint": subscription.endpoint,
                "created_at": timezone.localtime(subscription.created_at).isoformat()}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(parameters=[OpenApiParameter("endpoint", str, required=True,
                                                 description="The endpoint of the subscription to remove.")],
                   responses={204: None})
    def delete(self, request):
        endpoint = request.query_params.get("endpoint", "")
        if not endpoint:
            raise serializers.ValidationError({"endpoint": ["This query parameter is required."]})
        deleted, _ = PushSubscription.objects.filter(user=request.user, endpoint=endpoint).delete()
        if not deleted:
            raise NotFound("You have no push subscription with this endpoint.")
        return Response(status=status.HTTP_204_NO_CONTENT)
