"""Admin for bookings, and the workflow's one action on accounts.

Appointments are booked, assigned, answered, reviewed and cancelled only through
`scheduling.workflow` (the dashboards and the REST API call it), because that is
where availability is checked under a lock, every change is written to the
`AppointmentEvent` history and published to the dashboards. So this admin is a
window onto that data, not a second way to change it:

- An appointment's status and every field the workflow owns are read-only;
  only its client, location and notes can be corrected here, and saving writes
  just those columns (a full save could write back a status the workflow changed
  a moment earlier).
- Appointments cannot be added here: operators book through the dashboard or
  the API, where `create_appointment` checks the therapist and records the
  "created" event. They cannot be deleted either: cancelling keeps the history.
- Events and rejections are view-only (rejections are reviewed on the operator
  dashboard through `review_rejection`).
- Availability is view-only; slots are kept by therapists on their page and by
  operators through the API (`add_availability` refuses overlapping slots). The
  one write offered, deleting slots, goes through `delete_availability`, which
  refuses a slot that still holds an open appointment.

The User admin lives in `accounts/admin.py`, and accounts never imports
scheduling. The "Re-enable selected therapists" action needs the workflow, so it
is added here by subclassing the accounts `UserAdmin` and registering `User`
again with the subclass: the accounts admin stays complete on its own, the
dependency keeps pointing from scheduling to accounts, and no private admin
registry is touched.
"""

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts.admin import ReadOnlyAdminMixin
from accounts.admin import UserAdmin as AccountsUserAdmin
from accounts.models import User

from . import workflow
from .models import Appointment, AppointmentEvent, AppointmentRejection, Availability, Client, Service

REENABLE_NOTE = "Re-enabled from the admin"


# ---------------------------------------------------------------------------
# Accounts: the re-enable action needs the workflow.
# ---------------------------------------------------------------------------


class UserAdmin(AccountsUserAdmin):
    actions = ("reenable_therapists",)

    @admin.action(description="Re-enable selected therapists", permissions=["change"])
    def reenable_therapists(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        enabled = []
        for user in queryset.order_by("first_name", "last_name", "pk"):
            if not user.is_therapist:
                self.message_user(request, f"{user.display_name} is not a therapist.", messages.ERROR)
                continue
            try:
                workflow.enable_therapist(actor=request.user, therapist_id=user.pk, note=REENABLE_NOTE)
            except workflow.WorkflowError as exc:
                self.message_user(request, f"Could not re-enable {user.display_name}: {exc.detail}", messages.ERROR)
            else:
                enabled.append(user.display_name)
        if enabled:
            self.message_user(request, f"Re-enabled {len(enabled)} therapist(s): {', '.join(enabled)}.",
                              messages.SUCCESS)


admin.site.unregister(User)
admin.site.register(User, UserAdmin)


# ---------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------


class TherapistFilter(admin.SimpleListFilter):
    """Therapists only (the plain related filter would list every user)."""

    title = "therapist"
    parameter_name = "therapist"

    def lookups(self, request, model_admin):
        therapists = User.objects.filter(role=User.Role.THERAPIST).only("id", "username", "first_name", "last_name")
        return [("none", "Unassigned"), *((str(t.pk), t.display_name) for t in therapists)]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(therapist__isnull=True)
        if value and value.isdigit():
            return queryset.filter(therapist_id=int(value))
        return queryset


class ReviewFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("waiting", "Waiting for review"), *AppointmentRejection.Decision.choices]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "waiting":
            return queryset.filter(review_decision="")
        if value in AppointmentRejection.Decision.values:
            return queryset.filter(review_decision=value)
        return queryset


# ---------------------------------------------------------------------------
# Clients, services, availability
# ---------------------------------------------------------------------------


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ("name", "phone", "email", "address", "appointment_count", "created_at")
    search_fields = ("name", "phone", "email", "address")
    readonly_fields = ("created_at",)

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(appointment_count=Count("appointments"))

    @admin.display(description="appointments", ordering="appointment_count")
    def appointment_count(self, client: Client) -> int:
        return client.appointment_count


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("name", "duration_minutes", "price_php", "is_active", "therapist_count")
    list_filter = ("is_active", "duration_minutes")
    search_fields = ("name",)
    filter_horizontal = ("therapists",)

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(therapist_count=Count("therapists"))

    @admin.display(description="price", ordering="price")
    def price_php(self, service: Service) -> str:
        return f"₱{service.price:,.2f}"

    @admin.display(description="qualified therapists", ordering="therapist_count")
    def therapist_count(self, service: Service) -> int:
        return service.therapist_count


@admin.register(Availability)
class AvailabilityAdmin(admin.ModelAdmin):
    list_display = ("therapist", "starts_at", "ends_at", "hours")
    list_filter = (TherapistFilter, "starts_at")
    search_fields = ("therapist__username", "therapist__first_name", "therapist__last_name")
    date_hierarchy = "starts_at"
    list_select_related = ("therapist",)
    fields = ("therapist", "starts_at", "ends_at")
    actions = ("delete_free_slots",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="hours")
    def hours(self, slot: Availability) -> str:
        return f"{(slot.ends_at - slot.starts_at).total_seconds() / 3600:g}"

    @admin.action(description="Delete selected slots (refused where an open appointment lies in one)")
    def delete_free_slots(self, request: HttpRequest, queryset: QuerySet[Availability]) -> None:
        deleted = 0
        for slot_id in queryset.values_list("pk", flat=True):
            try:
                workflow.delete_availability(actor=request.user, availability_id=slot_id)
            except workflow.WorkflowError as exc:
                self.message_user(request, f"Slot #{slot_id} kept: {exc.detail}", messages.ERROR)
            else:
                deleted += 1
        if deleted:
            self.message_user(request, f"Deleted {deleted} slot(s).", messages.SUCCESS)


# ---------------------------------------------------------------------------
# Appointments and their history
# ---------------------------------------------------------------------------


class AppointmentEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = AppointmentEvent
    fk_name = "appointment"
    fields = ("created_at", "kind", "from_status", "to_status", "actor", "therapist", "data")
    readonly_fields = fields
    ordering = ("id",)  # oldest first: the history reads top to bottom
    extra = 0
    verbose_name_plural = "history"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("actor", "therapist")


class AppointmentRejectionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = AppointmentRejection
    fields = ("created_at", "therapist", "reason_code", "reason", "review_decision", "review_note", "reviewed_by",
              "reviewed_at")
    readonly_fields = fields
    ordering = ("created_at", "id")
    extra = 0

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("therapist", "reviewed_by")


@admin.register(Appointment)
class AppointmentAdmin(admin.ModelAdmin):
    """Read-mostly: see the module docstring for why status and the workflow's
    fields cannot be edited and appointments cannot be added or deleted here."""

    # The only fields an admin may correct; nothing in the workflow depends on them.
    EDITABLE_FIELDS = ("client", "location", "notes")

    list_display = ("id", "starts_at", "client", "client__phone", "service", "therapist", "status",
                    "response_deadline", "cancellation_reason")
    list_display_links = ("id", "starts_at")
    list_filter = ("status", TherapistFilter, "starts_at", "cancellation_reason", "service")
    search_fields = ("client__name", "client__phone", "location", "=id")
    search_help_text = "Client name or phone, location, or appointment number."
    date_hierarchy = "starts_at"
    list_select_related = ("client", "service", "therapist")
    # The filtered count is enough; the full count would be one more query per page.
    show_full_result_count = False
    autocomplete_fields = ("client",)
    fieldsets = (
        ("Booking", {"fields": ("client", "service", "starts_at", "ends_at", "location", "notes")}),
        ("Workflow", {"fields": (
            "status", "therapist", "assigned_at", "response_deadline", "responded_at", "started_at",
            "completed_at", "cancelled_at", "auto_cancelled_at", "cancellation_reason", "cancellation_note",
            "auto_offers", "held",
        )}),
        ("Offer and receipts", {"fields": (
            "offer_number", "offer_sent_at", "offer_delivered_at", "offer_seen_at", "offer_reminded_at",
            "offer_escalated_at",
        )}),
        ("Record", {"fields": ("created_by", "created_at", "updated_at")}),
    )
    inlines = (AppointmentRejectionInline, AppointmentEventInline)

    def get_readonly_fields(self, request: HttpRequest, obj: Appointment | None = None):
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"] if f not in self.EDITABLE_FIELDS]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Appointment, form, change: bool) -> None:
        # Write only the corrected columns: never the status or the workflow's
        # fields as they were read, which a concurrent transition may have changed.
        changed = [name for name in form.changed_data if name in self.EDITABLE_FIELDS]
        if not changed:
            return
        obj.updated_at = timezone.now()
        obj.save(update_fields=[*changed, "updated_at"])


@admin.register(AppointmentRejection)
class AppointmentRejectionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("appointment", "therapist", "reason_code", "reason", "created_at", "review_decision",
                    "reviewed_by", "reviewed_at")
    list_filter = (ReviewFilter, "reason_code", TherapistFilter, "created_at")
    search_fields = ("reason", "appointment__client__name", "therapist__username", "therapist__first_name",
                     "therapist__last_name", "=appointment__id")
    date_hierarchy = "created_at"
    list_select_related = ("appointment__client", "therapist", "reviewed_by")


@admin.register(AppointmentEvent)
class AppointmentEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "appointment", "kind", "from_status", "to_status", "actor_display",
                    "therapist")
    list_filter = ("kind", "to_status", "created_at")
    search_fields = ("=appointment__id", "appointment__client__name")
    search_help_text = "Appointment number or client name."
    date_hierarchy = "created_at"
    list_select_related = ("appointment__client", "actor", "therapist")
    show_full_result_count = False

    @admin.display(description="actor", ordering="actor__username")
    def actor_display(self, event: AppointmentEvent) -> str:
        return str(event.actor) if event.actor_id else "the system"
