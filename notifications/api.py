from django.db.models import F
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import get_object_or_404
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsStaffMember

from .delivery import unread_count
from .models import Notification
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
