"""JSON shapes of notifications, shared by the API and the websocket."""

from accounts.formatting import business_tz

from .models import Notification


def notification_json(notification: Notification) -> dict:
    tz = business_tz()
    return {
        "id": notification.id,
        "kind": notification.kind,
        "message": notification.message,
        "appointment": notification.appointment_id,
        "created_at": notification.created_at.astimezone(tz).isoformat(),
        "read_at": notification.read_at.astimezone(tz).isoformat() if notification.read_at else None,
        "is_read": notification.read_at is not None,
    }
