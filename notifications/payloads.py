"""JSON shapes of notifications, shared by the API and the websocket."""

from django.utils import timezone

from .models import Notification


def notification_json(notification: Notification) -> dict:
    return {
        "id": notification.id,
        "kind": notification.kind,
        "message": notification.message,
        "appointment": notification.appointment_id,
        "created_at": timezone.localtime(notification.created_at).isoformat(),
        "read_at": timezone.localtime(notification.read_at).isoformat() if notification.read_at else None,
        "is_read": notification.read_at is not None,
    }
