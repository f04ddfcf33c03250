"""The JSON shape of an appointment, shared by the REST API, the events feed and
the websocket, built as plain dicts (the hot path of every list and event)."""

from datetime import datetime

from django.utils import timezone

from accounts.formatting import business_tz

from .models import Appointment, AppointmentRejection


def _iso(value: datetime | None, tz=None) -> str | None:
    return value.astimezone(tz or business_tz()).isoformat() if value else None


def _person(user) -> dict | None:
    # The phone is there for operators to call the therapist. A therapist only ever
    # gets the full JSON of an appointment while it is theirs (appointment_json_for,
    # selectors), so the only therapist phone a therapist sees is their own.
    if user is None:
        return None
    return {"id": user.id, "name": user.display_name, "phone": user.phone}


def rejection_json(rejection: AppointmentRejection | None, tz=None) -> dict | None:
    if rejection is None:
        return None
    tz = tz or business_tz()
    return {
        "reason": rejection.reason,
        "reason_code": rejection.reason_code,
        "therapist": rejection.therapist_id,
        "created_at": _iso(rejection.created_at, tz),
        "review_decision": rejection.review_decision or None,
        "review_note": rejection.review_note,
        "reviewed_at": _iso(rejection.reviewed_at, tz),
    }


def offer_json(appointment: Appointment, tz=None) -> dict | None:
    """The current offer to the assigned therapist and its receipts; null while unassigned."""
    if appointment.therapist_id is None or not appointment.offer_number:
        return None
    return {
        "number": appointment.offer_number,
        "sent_at": _iso(appointment.offer_sent_at, tz),
        "delivered_at": _iso(appointment.offer_delivered_at, tz),
        "seen_at": _iso(appointment.offer_seen_at, tz),
        "reminded_at": _iso(appointment.offer_reminded_at, tz),
        "escalated_at": _iso(appointment.offer_escalated_at, tz),
    }


def appointment_json(appointment: Appointment, *, now: datetime | None = None) -> dict:
    """Needs the appointment's client, service, therapist and latest rejection loaded
    (`select_related` and `with_latest_rejection()`)."""
    now = now or timezone.now()
    tz = business_tz()  # looked up once per payload, not per value
    deadline = appointment.response_deadline
    waiting = appointment.status == Appointment.Status.PENDING and appointment.therapist_id and deadline
    client = appointment.client
    service = appointment.service
    return {
        "id": appointment.id,
        "status": appointment.status,
        "client": {"id": client.id, "name": client.name, "phone": client.phone, "address": client.address},
        "service": {"id": service.id, "name": service.name, "duration_minutes": service.duration_minutes},
        "therapist": _person(appointment.therapist),
        "starts_at": _iso(appointment.starts_at, tz),
        "ends_at": _iso(appointment.ends_at, tz),
        "location": appointment.location,
        "notes": appointment.notes,
        "assigned_at": _iso(appointment.assigned_at, tz),
        "response_deadline": _iso(deadline, tz),
        "seconds_to_deadline": int((deadline - now).total_seconds()) if waiting else None,
        "cancellation_reason": appointment.cancellation_reason or None,
        "cancellation_note": appointment.cancellation_note,
        "latest_rejection": rejection_json(appointment.latest_rejection, tz),
        "offer": offer_json(appointment, tz),
        "auto_offers": appointment.auto_offers,
        "held": appointment.held,
        "created_at": _iso(appointment.created_at, tz),
        "updated_at": _iso(appointment.updated_at, tz),
    }


def appointment_json_for(appointment: Appointment, viewer_is_operator: bool, viewer_id: int, **kw) -> dict:
    """What one viewer may see: a therapist sees a full appointment only while it is
    theirs; an event about one taken away from them carries just id and status."""
    if viewer_is_operator or appointment.therapist_id == viewer_id:
        return appointment_json(appointment, **kw)
    return {"id": appointment.id, "status": appointment.status, "therapist": None, "is_mine": False}
