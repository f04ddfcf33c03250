"""What one workflow transaction records besides the rows it changes: its events,
what it tells people, and which sockets it closes.

The outbox collects them while the transaction runs and `flush` writes them at
the end with one insert per table (`accounts.bulk.insert_rows`: a sweep batch
of 500 timeouts is a few queries, not thousands), then schedules the socket
messages for after the commit so a rolled-back transaction publishes nothing. The notification rows and their
messages are the notifications app's business (`notifications.delivery`); the
outbox only shapes the `appointment.event` messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from accounts.bulk import insert_rows
from accounts.models import User
from notifications import realtime
from notifications.delivery import Note, deliver, mark_handled

from .models import Appointment, AppointmentEvent
from .payloads import appointment_json, appointment_json_for

_EVENT_COLUMNS = ("appointment_id", "kind", "actor_id", "therapist_id", "from_status", "to_status", "data",
                  "created_at")


@dataclass(slots=True)
class Event:
    """An `AppointmentEvent` row to insert (a plain record: a sweep batch makes
    hundreds, and building model instances for them was a tenth of its time)."""

    appointment_id: int
    kind: str
    actor_id: int | None
    therapist_id: int | None
    from_status: str
    to_status: str
    data: dict = field(default_factory=dict)
    created_at: datetime | None = None
    id: int | None = None


class Outbox:
    def __init__(self, now: datetime):
        self.now = now
        self.events: list[tuple[Event, Appointment]] = []
        self.notes: list[Note] = []
        self.handled: list[tuple[int, tuple[str, ...]]] = []
        self.disconnect_user_ids: list[int] = []

    def event(self, appointment: Appointment, kind: str, *, actor: User | None, from_status: str,
              therapist_id: int | None = None, operators_only: bool = False, **data) -> None:
        """`therapist_id`: the therapist the event concerns (default: the assigned
        one); `operators_only`: none (an operators' matter, e.g. "assign by hand")."""
        if therapist_id is None and not operators_only:
            therapist_id = appointment.therapist_id
        self.events.append((Event(
            appointment.id, kind, actor.id if actor else None, therapist_id, from_status, appointment.status,
            data, self.now,
        ), appointment))

    def notify(self, recipient_id: int, kind: str, appointment: Appointment | None, message: str) -> None:
        self.notes.append(Note(kind, message, recipient_id, appointment.id if appointment else None))

    def notify_operators(self, kind: str, appointment: Appointment | None, message: str) -> None:
        self.notes.append(Note.to_operators(kind, message, appointment.id if appointment else None))

    def handled_for_everyone(self, appointment: Appointment, *kinds: str) -> None:
        """Everybody's unread `kinds` notifications about `appointment` are dealt with."""
        self.handled.append((appointment.id, kinds))

    def disconnect(self, user_ids) -> None:
        self.disconnect_user_ids.extend(user_ids)

    def flush(self) -> None:
        events = [event for event, _ in self.events]
        ids = insert_rows(AppointmentEvent, _EVENT_COLUMNS,
                          [[getattr(event, name) for name in _EVENT_COLUMNS] for event in events])
        for event, id_ in zip(events, ids, strict=True):
            event.id = id_
        messages: list[realtime.Message] = []
        snapshots: dict[int, dict] = {}
        for event, (_, appointment) in zip(events, self.events, strict=True):
            if appointment.id not in snapshots:
                snapshots[appointment.id] = appointment_json(appointment, now=self.now)
            header = {"type": "appointment.event", "event_id": event.id, "kind": event.kind}
            messages.append((realtime.OPERATORS_GROUP, {**header, "appointment": snapshots[appointment.id]}))
            if event.therapist_id:
                if appointment.therapist_id == event.therapist_id:
                    view = snapshots[appointment.id]
                else:
                    view = appointment_json_for(appointment, False, event.therapist_id)
                messages.append((realtime.user_group(event.therapist_id), {**header, "appointment": view}))
            # A reassign concerns two therapists: the one it left sees it go.
            from_therapist = event.data.get("from_therapist")
            if from_therapist and from_therapist != event.therapist_id:
                view = appointment_json_for(appointment, False, from_therapist)
                messages.append((realtime.user_group(from_therapist), {**header, "appointment": view}))
        for appointment_id, kinds in self.handled:
            messages.extend(mark_handled(appointment_id=appointment_id, kinds=kinds, now=self.now))
        messages.extend(deliver(self.notes, now=self.now))
        for user_id in self.disconnect_user_ids:
            messages.extend(realtime.disconnect_user(user_id))
        realtime.publish_on_commit(messages)
