from urllib.parse import urlsplit

from django.conf import settings
from django.db import models


class Notification(models.Model):
    """A message for one person, shown in the bell and pushed over the socket."""

    class Kind(models.TextChoices):
        ASSIGNED = "assigned", "New offer"
        REJECTED = "rejected", "Offer rejected"
        DENIED = "rejection_denied", "Rejection denied"
        CANCELLED = "cancelled", "Appointment cancelled"
        TIMED_OUT = "timed_out", "You missed a deadline"
        TIMEOUTS = "timeouts", "Timeouts (digest)"
        UNSTAFFED = "unstaffed", "No therapist available (digest)"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"
        UNSEEN = "unseen", "Offer not seen"
        REASSIGNED = "reassigned", "Reassigned"
        RESCHEDULED = "rescheduled", "Rescheduled"
        EDITED = "edited", "Appointment changed"
        ENABLED = "enabled", "Account re-enabled"

    # No index of its own: (recipient, read_at, -id) below leads with it, and a
    # second index on every row written and every one marked read was work for nothing.
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications",
                                  db_index=False)
    kind = models.CharField(max_length=40, choices=Kind.choices)
    # A string reference: notifications never imports scheduling.
    appointment = models.ForeignKey(
        "scheduling.Appointment", null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    # A digest (appointment null) names its appointments in the message as "#id".
    message = models.CharField(max_length=1000)
    created_at = models.DateTimeField(db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["recipient", "read_at", "-id"], name="notif_recipient_unread"),
        ]

    def __str__(self) -> str:
        return f"to {self.recipient_id}: {self.message[:60]}"

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class PushSubscription(models.Model):
    """One device of one person that accepts Web Push messages (the browser's
    PushSubscription). A person may have several; an endpoint belongs to one
    person at a time (the last one to subscribe on that device)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.CharField(max_length=2000, unique=True)
    p256dh = models.CharField(max_length=200, help_text="The device's public key (base64url).")
    auth = models.CharField(max_length=100, help_text="The device's auth secret (base64url).")
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "created_at"], name="push_subscription_user")]

    def __str__(self) -> str:
        return f"{self.user} on {self.service_host}"

    @property
    def service_host(self) -> str:
        """The push service's host (the rest of the endpoint identifies the device)."""
        return urlsplit(self.endpoint).hostname or "?"
