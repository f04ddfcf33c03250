import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

from .managers import UserManager


class User(AbstractUser):
    """A member of staff: an operator or a therapist.

    A therapist who lets an assignment time out is disabled (`is_active=False`);
    `disabled_at` / `disabled_reason` say when and why, and every change of that
    state is kept in `AccountStatusChange`.
    """

    class Role(models.TextChoices):
        OPERATOR = "operator", "Operator"
        THERAPIST = "therapist", "Therapist"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.THERAPIST, db_index=True)
    phone = models.CharField(max_length=32, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    # The secret part of the therapist's calendar feed address (/calendar/<secret>.ics);
    # empty until they ask for one, replaced when they rotate it.
    calendar_secret = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)

    objects = UserManager()

    class Meta:
        ordering = ["first_name", "last_name", "username"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username

    @property
    def is_operator(self) -> bool:
        return self.role == self.Role.OPERATOR

    @property
    def is_therapist(self) -> bool:
        return self.role == self.Role.THERAPIST

    @property
    def has_calendar_feed(self) -> bool:
        return bool(self.calendar_secret)

    def rotate_calendar_secret(self) -> str:
        """A new calendar feed address; the old one stops answering at once."""
        self.calendar_secret = secrets.token_urlsafe(32)
        self.save(update_fields=["calendar_secret"])
        return self.calendar_secret


class AccountStatusChange(models.Model):
    """One disable or enable of an account: the history is kept, never overwritten."""

    class Action(models.TextChoices):
        DISABLED = "disabled", "Disabled"
        ENABLED = "enabled", "Enabled"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="status_changes")
    action = models.CharField(max_length=16, choices=Action.choices)
    reason = models.CharField(max_length=500, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Empty when the system made the change (the deadline sweep).",
    )
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} {self.action} at {self.created_at:%Y-%m-%d %H:%M}"
