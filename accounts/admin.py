"""Admin for staff accounts and their disable/enable history.

A therapist's `is_active` is owned by the workflow: the deadline rule disables
them and `scheduling.workflow.enable_therapist` re-enables them, and both write
an `AccountStatusChange`, so who did it, when and why is never lost. Here those
fields are therefore read-only for therapists and the history is view-only.

The "Re-enable selected therapists" action calls the workflow, which lives in
scheduling; accounts never imports scheduling (the dependencies point
accounts <- notifications <- scheduling). So this module registers the complete
accounts admin, and `scheduling/admin.py` subclasses `UserAdmin` to add the
action and re-registers `User` with the subclass.
"""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from .models import AccountStatusChange, User


class ReadOnlyAdminMixin:
    """History rows are written by the application, never by hand."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AccountStatusChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = AccountStatusChange
    fk_name = "user"
    fields = ("created_at", "action", "reason", "changed_by")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    extra = 0
    verbose_name = "disable/enable history entry"
    verbose_name_plural = "disable/enable history"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("changed_by")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "full_name", "role", "phone", "email", "is_active", "disabled_at",
                    "has_calendar_feed", "is_staff", "last_login")
    list_filter = ("role", "is_active", "is_staff", "is_superuser")
    search_fields = ("username", "first_name", "last_name", "phone", "email")
    ordering = ("role", "first_name", "last_name", "username")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email", "phone")}),
        ("Royal Care", {"fields": ("role", "is_active", "disabled_at", "disabled_reason", "has_calendar_feed")}),
        ("Django admin", {
            "classes": ("collapse",),
            "fields": ("is_staff", "is_superuser", "groups", "user_permissions"),
        }),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {
            "classes": ("wide",),
            "fields": ("username", "usable_password", "password1", "password2"),
        }),
        ("Royal Care", {"fields": ("role", "first_name", "last_name", "phone", "email")}),
    )
    inlines = (AccountStatusChangeInline,)

    @admin.display(description="name", ordering="first_name")
    def full_name(self, user: User) -> str:
        return user.get_full_name()

    @admin.display(description="calendar feed", boolean=True)
    def has_calendar_feed(self, user: User) -> bool:
        # Whether the therapist made one; its secret address is theirs alone.
        return user.has_calendar_feed

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None):
        readonly = ["disabled_at", "disabled_reason", "last_login", "date_joined", "has_calendar_feed"]
        if obj is not None and obj.is_therapist:
            # Disabling is the deadline rule's job and re-enabling the workflow's
            # (the action below), so the history always says who and why.
            readonly.append("is_active")
        return readonly

    def get_inline_instances(self, request: HttpRequest, obj: User | None = None):
        # No history on the add page: a new account has none.
        return super().get_inline_instances(request, obj) if obj is not None else []


@admin.register(AccountStatusChange)
class AccountStatusChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "user", "action", "reason", "changed_by_display")
    list_filter = ("action",)
    search_fields = ("user__username", "user__first_name", "user__last_name", "reason")
    date_hierarchy = "created_at"
    list_select_related = ("user", "changed_by")
    fields = ("user", "action", "reason", "changed_by", "created_at")

    @admin.display(description="changed by", ordering="changed_by__username")
    def changed_by_display(self, change: AccountStatusChange) -> str:
        return str(change.changed_by) if change.changed_by_id else "the system (deadline sweep)"
