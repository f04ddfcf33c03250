"""Notifications are written by the workflow and read in the dashboards' bell;
here they are view-only (deleting old ones is allowed). The appointment is
reached through the string model reference only: notifications never imports
scheduling."""

from django.contrib import admin
from django.http import HttpRequest

from .models import Notification, PushSubscription


class ReadFilter(admin.SimpleListFilter):
    title = "read"
    parameter_name = "read"

    def lookups(self, request, model_admin):
        return [("no", "Unread"), ("yes", "Read")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(read_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(read_at__isnull=False)
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "recipient", "kind", "appointment", "short_message", "read_at")
    list_filter = (ReadFilter, "kind", "recipient__role", "created_at")
    search_fields = ("message", "recipient__username", "recipient__first_name", "recipient__last_name",
                     "=appointment__id")
    date_hierarchy = "created_at"
    # The appointment's __str__ names its client.
    list_select_related = ("recipient", "appointment__client")
    show_full_result_count = False
    fields = ("recipient", "kind", "appointment", "message", "created_at", "read_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest):
        # The change page shows the appointment's __str__ too.
        return super().get_queryset(request).select_related("recipient", "appointment__client")

    @admin.display(description="message")
    def short_message(self, notification: Notification) -> str:
        text = notification.message
        return text if len(text) <= 80 else text[:79] + "…"


@admin.register(PushSubscription)
class PushSubscriptionAdmin(admin.ModelAdmin):
    """Devices that get Web Push messages. Made by the devices themselves; here they
    can be looked at and removed (a lost phone), not created or edited."""

    list_display = ("user", "service_host", "user_agent", "created_at")
    list_filter = ("created_at",)
    search_fields = ("user__username", "user__first_name", "user__last_name", "endpoint")
    list_select_related = ("user",)
    fields = ("user", "endpoint", "user_agent", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
