"""Every state change of an appointment, and nothing else, lives here.

Each transition is one keyword-only function that runs inside
`transaction.atomic()`, re-reads the appointment with `select_for_update()`
(and the therapist's row where availability is checked), checks the allowed
starting states, saves, writes exactly one `AppointmentEvent` per transition and
publishes after commit. Two concurrent calls can never both win: the loser sees
the winner's committed state and gets a `WorkflowError` (409).

Deadlines are exact. Any write that finds its appointment overdue (pending with
a therapist and `response_deadline <= now`) first applies the timeout through
the same batch function the sweep uses, commits it, and only then refuses the
write (409 `deadline_passed`). Reads never change state.

Lock order is always appointment rows first, then user rows, so the sweep and
the request paths cannot deadlock each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts import formatting
from accounts.bulk import any_of
from accounts.fields import does_not_exist
from accounts.models import AccountStatusChange, User
from accounts.prepared import Prepared, insert_one, save_fields
from notifications import push
from notifications.models import Notification

from . import availability
from .models import Appointment, AppointmentEvent, AppointmentRejection, Availability, Client, Service
from .outbox import Outbox
from .text import id_list
from .text import sentence as _sentence
from .text import span as _span
from .text import when as _when

logger = logging.getLogger(__name__)

Status = Appointment.Status
Kind = AppointmentEvent.Kind
Say = Notification.Kind
Reason = Appointment.CancellationReason

MAX_REASON_LENGTH = 500


class WorkflowError(Exception):
    """A refused transition. The API answers `status_code` with `code` and `detail`."""

    status_code = 409

    def __init__(self, code: str, detail: str, *, status_code: int | None = None,
                 errors: dict[str, list[str]] | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.errors = errors
        if status_code is not None:
            self.status_code = status_code


def _not_found() -> WorkflowError:
    return WorkflowError("not_found", "No such appointment.", status_code=404)


def response_window() -> timedelta:
    return timedelta(minutes=settings.RESPONSE_DEADLINE_MINUTES)


# ---------------------------------------------------------------------------
# Running one transition.
# ---------------------------------------------------------------------------


# Every transition's first statement: its SQL is built once (accounts.prepared).
_LOCK_AND_READ = Prepared(
    lambda appointment_id: Appointment.objects.select_for_update(of=("self",))
    .select_related("client", "service", "therapist")
    .annotate(rejected_before=Exists(AppointmentRejection.objects.filter(appointment=OuterRef("pk"))))
    .filter(pk=appointment_id)[:1],
    appointment_id=-(2**62) + 11,
)
# Its newest rejection (`AppointmentRejection.attach_latest` for one appointment).
_LATEST_REJECTION = Prepared(
    lambda appointment_id: AppointmentRejection.objects.filter(appointment_id=appointment_id)
    .order_by("-created_at", "-id")[:1],
    appointment_id=-(2**62) + 12,
)


def _lock(appointment_id: int) -> Appointment:
    """Lock the appointment's row and read it with its relations, in one statement
    when nobody else held the lock; its newest rejection takes one more, and only
    when it has ever been rejected.

    A `FOR UPDATE` that had to wait for another transaction returns the new
    version of the locked row but the *old* rows of the tables joined to it: after
    a concurrent assign, `therapist_id` would be set and `therapist` None. Only the
    therapist can change under us (client and service never do), so a therapist
    that does not match `therapist_id` is read again, now that the row is ours.
    Rejections are written only under this lock, so `rejected_before` is current.
    """
    rows = _LOCK_AND_READ.fetch(appointment_id=int(appointment_id))
    if not rows:
        raise _not_found()
    appt = rows[0]
    joined = appt._state.fields_cache.get("therapist")
    if (joined.pk if joined else None) != appt.therapist_id:
        appt.therapist = User.objects.get(pk=appt.therapist_id) if appt.therapist_id else None
    appt.latest_rejection = (next(iter(_LATEST_REJECTION.fetch(appointment_id=appt.id)), None)
                             if appt.rejected_before else None)
    return appt


def _run(appointment_id: int, actor: User, body: Callable[[Appointment, Outbox], None], *,
         late_code: str = "invalid_transition") -> Appointment:
    """Lock the appointment and apply `body`; if it is overdue, commit the timeout
    first and refuse with `late_code`."""
    with transaction.atomic():
        appt = _lock(appointment_id)
        # Before anything else: someone else's appointment is "not found", and
        # touching it must not even apply its timeout.
        _require_own(appt, actor)
        now = timezone.now()
        outbox = Outbox(now)
        overdue = appt.is_overdue(now)
        missed = appt.response_deadline
        if overdue:
            _expire_locked([appt], outbox)
        else:
            body(appt, outbox)
        outbox.flush()
    if overdue:
        # Raised after the atomic block: the timeout above is committed.
        raise _too_late(appt, late_code, missed)
    return appt


def _too_late(appt: Appointment, code: str, missed: datetime | None = None) -> WorkflowError:
    # With re-offer on, a timeout leaves the booking pending for someone else.
    if appt.status == Status.CANCELLED:
        outcome = "has been cancelled for no response"
    elif appt.therapist_id:
        outcome = "has been offered to another therapist"
    else:
        outcome = "is back with the operators"
    return WorkflowError(
        code, f"The answer was due by {_when(missed or appt.response_deadline)}; appointment #{appt.id} {outcome}.",
    )


def _require_answerable(appt: Appointment, action: str) -> None:
    # Whether this call or the sweep timed it out, a late answer gets the same 409.
    if appt.status == Status.CANCELLED and appt.cancellation_reason == Reason.RESPONSE_TIMEOUT:
        raise _too_late(appt, "deadline_passed")
    _require(appt, Status.PENDING, action=action)


def _require(appt: Appointment, *statuses: str, action: str) -> None:
    if appt.status not in statuses:
        allowed = " or ".join(statuses)
        raise WorkflowError(
            "invalid_transition",
            f"Cannot {action} appointment #{appt.id}: it is {appt.status.replace('_', ' ')}, not {allowed}.",
        )


def _require_own(appt: Appointment, actor: User) -> None:
    """A therapist acts only on their own appointment; anyone else's is 'not found'.
    One that was theirs until an operator moved it (a reassign racing their answer)
    is a clear 409: they knew of it, and a 404 would puzzle them."""
    if actor.is_therapist and appt.therapist_id != actor.id:
        _explain_lost_offer(appt, actor)
        if AppointmentEvent.objects.filter(appointment=appt, therapist=actor).exists():
            raise WorkflowError("invalid_transition", f"Appointment #{appt.id} is no longer assigned to you.")
        raise _not_found()


def _explain_lost_offer(appt: Appointment, actor: User) -> None:
    """A therapist whose offer timed out and went on to someone else (re-offer)
    is told the deadline passed, not that the appointment does not exist."""
    data = (AppointmentEvent.objects.filter(appointment=appt, kind=Kind.TIMED_OUT, therapist=actor)
            .order_by("-id").values_list("data", flat=True).first())
    if data is not None and data.get("response_deadline"):
        raise _too_late(appt, "deadline_passed", datetime.fromisoformat(data["response_deadline"]))


def _save(appt: Appointment, now: datetime, *fields: str) -> None:
    appt.updated_at = now
    save_fields(appt, *fields, "updated_at")


def _save_many(appts: list[Appointment], now: datetime, *fields: str) -> None:
    """`_save` for a batch, in one UPDATE. A field with one value for every row is
    set plainly; the others get `CASE id WHEN … THEN … END`, written out: Django's
    Case/When (and `bulk_update`) resolves every When as a filter, which took
    seconds of CPU for a sweep batch of 500."""
    if not appts:
        return
    updates = {}
    for name in (*fields, "updated_at"):
        if name == "updated_at":
            for appt in appts:
                appt.updated_at = now
        model_field = Appointment._meta.get_field(name)
        values = {appt.id: model_field.get_db_prep_save(getattr(appt, model_field.attname), connection)
                  for appt in appts}
        if len(set(values.values())) == 1:
            updates[model_field.attname] = getattr(appts[0], model_field.attname)
            continue
        sql = "CASE id " + " ".join(["WHEN %s THEN %s"] * len(values)) + " END"
        # Only placeholders in the SQL: every id and value travels as a parameter.
        updates[model_field.attname] = RawSQL(sql, [x for pair in values.items() for x in pair],  # noqa: S611
                                              output_field=model_field)
    Appointment.objects.filter(id__in=[a.id for a in appts]).update(**updates)


def _clean_text(value: str, *, field: str, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise WorkflowError("invalid", f"A {field} is required.", status_code=400)
    if len(value) > MAX_REASON_LENGTH:
        raise WorkflowError("invalid", f"The {field} must be at most {MAX_REASON_LENGTH} characters.",
                            status_code=400)
    return value


# ---------------------------------------------------------------------------
# The transitions.
# ---------------------------------------------------------------------------


def create_appointment(*, actor: User, client: Client, service: Service, starts_at: datetime,
                       location: str, notes: str = "", therapist_id: int | None = None) -> Appointment:
    """Create a pending booking; with `therapist_id` it is assigned in the same
    transaction, so a refused assignment creates nothing."""
    with transaction.atomic():
        now = timezone.now()
        appt = Appointment.objects.create(
            client=client, service=service, starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=service.duration_minutes),
            location=location, notes=notes, created_by=actor, updated_at=now,
        )
        appt.latest_rejection = None
        outbox = Outbox(now)
        outbox.event(appt, Kind.CREATED, actor=actor, from_status="")
        if therapist_id is not None:
            _assign_locked(appt, therapist_id, actor, outbox)
        outbox.flush()
    return appt


def assign(*, actor: User, appointment_id: int, therapist_id: int) -> Appointment:
    return _run(appointment_id, actor, lambda appt, outbox: _assign_locked(appt, therapist_id, actor, outbox))


def _assign_locked(appt: Appointment, therapist_id: int, actor: User, outbox: Outbox) -> None:
    _require(appt, Status.PENDING, action="assign")
    if appt.therapist_id is not None:
        raise WorkflowError("invalid_transition",
                            f"Appointment #{appt.id} is already assigned to {appt.therapist.display_name}.")
    now = outbox.now
    if appt.starts_at <= now:
        raise WorkflowError("invalid_transition",
                            f"Appointment #{appt.id} started at {_when(appt.starts_at)}; it can no longer be assigned.")
    therapist = _lock_free_therapist(appt, therapist_id)
    fields = _open_offer(appt, therapist, outbox, actor=actor, deadline=min(now + response_window(), appt.starts_at))
    _save(appt, now, *fields)
    # Whatever the operators were told this booking needs, it has it now.
    outbox.handled_for_everyone(appt, Say.NEEDS_ATTENTION)


def _lock_free_therapist(appt: Appointment, therapist_id: int) -> User:
    """Lock the therapist's row, then ask the engine whether they can take `appt`
    as it stands in memory (its new time or place included)."""
    therapist, reason = availability.lock_and_judge(appt, therapist_id)
    if therapist is None or therapist.role != User.Role.THERAPIST:
        raise WorkflowError("invalid", "Invalid input.", status_code=400,
                            errors={"therapist": [does_not_exist(therapist_id)]})
    if reason:
        raise WorkflowError("therapist_unavailable", f"{therapist.display_name} {reason}.")
    return therapist


def _offer(appt: Appointment, therapist: User, now: datetime) -> tuple[str, ...]:
    """A fresh offer made by a transition that writes its own event (reassign,
    reschedule): `pending` with this therapist, answer due within the window but
    never after the start, a new offer number (`_start_offer`). Returns the
    fields to save."""
    appt.status = Status.PENDING
    appt.therapist = therapist
    appt.assigned_at = now
    appt.response_deadline = min(now + response_window(), appt.starts_at)
    return ("status", "therapist", "assigned_at", "response_deadline", *_start_offer(appt, now))


def _offer_message(appt: Appointment) -> str:
    return (f"New appointment #{appt.id} at {_when(appt.starts_at)} ({appt.service.name}, "
            f"{appt.location}), answer by {_when(appt.response_deadline)}.")


# An offer's number and its receipts (reaching the therapist); they start again
# with every new offer.
OFFER_RECEIPT_FIELDS = ("offer_number", "offer_sent_at", "offer_delivered_at", "offer_seen_at",
                        "offer_reminded_at", "offer_escalated_at")
OFFER_FIELDS = ("therapist", "assigned_at", "response_deadline", *OFFER_RECEIPT_FIELDS)


def _open_offer(appt: Appointment, therapist: User, outbox: Outbox, *, actor: User | None, deadline: datetime,
                **data) -> tuple[str, ...]:
    """Put `appt` to `therapist` as a new offer, to be answered by `deadline`: the
    one place an `assigned` offer opens (an operator's assign, an automatic
    re-offer). Changes the row in memory, writes its `assigned` event and tells
    the therapist; returns the fields to save (one row: `_save`; a batch:
    `_save_many`, one UPDATE). The caller holds the therapist's row lock."""
    appt.therapist = therapist
    appt.assigned_at = outbox.now
    appt.response_deadline = deadline
    _start_offer(appt, outbox.now)
    outbox.event(appt, Kind.ASSIGNED, actor=actor, from_status=Status.PENDING,
                 response_deadline=deadline.isoformat(), **data)
    outbox.notify(therapist.id, Say.ASSIGNED, appt, _offer_message(appt))
    return OFFER_FIELDS


def accept(*, actor: User, appointment_id: int) -> Appointment:
    def body(appt: Appointment, outbox: Outbox) -> None:
        if not actor.is_therapist:
            raise WorkflowError("permission_denied", "Only the assigned therapist can accept.", status_code=403)
        _require_answerable(appt, "accept")
        appt.status = Status.CONFIRMED
        appt.responded_at = outbox.now
        _save(appt, outbox.now, "status", "responded_at")
        outbox.event(appt, Kind.ACCEPTED, actor=actor, from_status=Status.PENDING)

    return _run(appointment_id, actor, body, late_code="deadline_passed")


def reject(*, actor: User, appointment_id: int, reason: str,
           reason_code: str = AppointmentRejection.ReasonCode.OTHER) -> Appointment:
    reason = _clean_text(reason, field="rejection reason")
    codes = AppointmentRejection.ReasonCode.values
    if reason_code not in codes:
        raise WorkflowError("invalid", "Invalid input.", status_code=400,
                            errors={"reason_code": [f"Unknown reason code; choose one of {', '.join(codes)}."]})

    def body(appt: Appointment, outbox: Outbox) -> None:
        if not actor.is_therapist:
            raise WorkflowError("permission_denied", "Only the assigned therapist can reject.", status_code=403)
        _require_answerable(appt, "reject")
        appt.status = Status.REJECTED
        appt.responded_at = outbox.now
        _save(appt, outbox.now, "status", "responded_at")
        rejection = AppointmentRejection(
            appointment=appt, therapist=actor, reason=reason, reason_code=reason_code, created_at=outbox.now)
        insert_one(rejection)
        appt.latest_rejection = rejection
        appt.rejected_before = True
        outbox.event(appt, Kind.REJECTED, actor=actor, from_status=Status.PENDING, reason=reason,
                     reason_code=reason_code)
        outbox.notify_operators(
            Say.REJECTED, appt,
            f"{actor.display_name} rejected #{appt.id} ({_when(appt.starts_at)}, {appt.client.name}): {reason}",
        )

    return _run(appointment_id, actor, body, late_code="deadline_passed")


def review_rejection(*, actor: User, appointment_id: int, decision: str, note: str = "") -> Appointment:
    """An operator decides on the open rejection: `deny` gives the same therapist
    a fresh deadline, `accept` puts the booking back in the queue. Either way the
    other operators' "rejected" notifications about it are handled."""
    if decision not in AppointmentRejection.Decision.values:
        raise WorkflowError("invalid", "The review decision must be 'accept' or 'deny'.", status_code=400)
    note = _clean_text(note, field="review note", required=False)
    decide = _deny_rejection if decision == AppointmentRejection.Decision.DENY else _accept_rejection

    def body(appt: Appointment, outbox: Outbox) -> None:
        # The open rejection is the newest one, read under the appointment's lock,
        # which every review and every rejection takes first.
        rejection = appt.latest_rejection
        if appt.status != Status.REJECTED:
            if rejection is not None and rejection.review_decision:
                raise WorkflowError("already_reviewed",
                                    f"The rejection of #{appt.id} was already reviewed "
                                    f"({rejection.review_decision}) by {rejection.reviewed_by}.")
            _require(appt, Status.REJECTED, action="review a rejection of")
        decide(appt, rejection, actor, note, outbox)
        outbox.handled_for_everyone(appt, Say.REJECTED)

    return _run(appointment_id, actor, body)


def _record_review(rejection: AppointmentRejection, decision: str, actor: User, note: str, now: datetime) -> None:
    rejection.review_decision = decision
    rejection.review_note = note
    rejection.reviewed_by = actor
    rejection.reviewed_at = now
    save_fields(rejection, "review_decision", "review_note", "reviewed_by", "reviewed_at")


def _deny_rejection(appt: Appointment, rejection: AppointmentRejection, actor: User, note: str,
                    outbox: Outbox) -> None:
    """The same therapist must answer again, by a fresh deadline."""
    now = outbox.now
    therapist = appt.therapist
    if appt.starts_at <= now:
        raise WorkflowError("invalid_transition",
                            f"Appointment #{appt.id} has already started; accept the rejection or cancel it.")
    if not therapist.is_active:
        raise WorkflowError("therapist_unavailable", f"{therapist.display_name} is disabled.")
    _record_review(rejection, AppointmentRejection.Decision.DENY, actor, note, now)
    appt.latest_rejection = rejection
    appt.status = Status.PENDING
    appt.assigned_at = now
    appt.response_deadline = min(now + response_window(), appt.starts_at)
    _save(appt, now, "status", "assigned_at", "response_deadline")
    outbox.event(appt, Kind.REJECTION_DENIED, actor=actor, from_status=Status.REJECTED, note=note,
                 response_deadline=appt.response_deadline.isoformat())
    outbox.notify(therapist.id, Say.DENIED, appt,
                  f"Your rejection of #{appt.id} ({_when(appt.starts_at)}) was denied"
                  + (f": {_sentence(note)}" if note else ".")
                  + f" Please answer by {_when(appt.response_deadline)}.")
    # The same offer goes on (no new number, same receipts), pushed with its new answer-by time.
    _push_offer(appt, now, title=f"Your rejection of #{appt.id} was denied: answer by "
                f"{formatting.when(appt.response_deadline, now=now)}")


def _accept_rejection(appt: Appointment, rejection: AppointmentRejection, actor: User, note: str,
                      outbox: Outbox) -> None:
    """Back to the queue unassigned; cancelled at once if nobody can take it."""
    now = outbox.now
    therapist = appt.therapist
    _record_review(rejection, AppointmentRejection.Decision.ACCEPT, actor, note, now)
    appt.latest_rejection = rejection
    appt.status = Status.PENDING
    appt.therapist = None
    appt.assigned_at = None
    appt.response_deadline = None
    _save(appt, now, "status", "therapist", "assigned_at", "response_deadline")
    outbox.event(appt, Kind.REJECTION_ACCEPTED, actor=actor, from_status=Status.REJECTED,
                 therapist_id=therapist.id, note=note)
    if settings.AUTO_REOFFER:
        # Straight to the next therapist; it waits (or is cancelled) only when nobody can take it.
        _reoffer_locked([appt], outbox)
        return
    # Once the start has passed nobody can be assigned, so it cannot wait in the queue.
    if appt.starts_at <= now or appt.id not in availability.staffable([appt]):
        _cancel_unstaffable_locked([appt], outbox)


def start(*, actor: User, appointment_id: int) -> Appointment:
    def body(appt: Appointment, outbox: Outbox) -> None:
        _require(appt, Status.CONFIRMED, action="start")
        _require_start_window(appt, outbox.now)
        appt.status = Status.IN_PROGRESS
        appt.started_at = outbox.now
        _save(appt, outbox.now, "status", "started_at")
        outbox.event(appt, Kind.STARTED, actor=actor, from_status=Status.CONFIRMED)

    return _run(appointment_id, actor, body)


def start_opens_at(appt: Appointment) -> datetime:
    """A session may be started from `START_EARLY_MINUTES` before its start on."""
    return appt.starts_at - timedelta(minutes=settings.START_EARLY_MINUTES)


def _require_start_window(appt: Appointment, now: datetime) -> None:
    opens = start_opens_at(appt)
    if now < opens:
        raise WorkflowError(
            "too_early",
            f"Appointment #{appt.id} starts at {formatting.when(appt.starts_at, now=now)}; it can be started from "
            f"{formatting.when(opens, now=now)}, {settings.START_EARLY_MINUTES} minutes before its start.",
        )


def complete(*, actor: User, appointment_id: int) -> Appointment:
    def body(appt: Appointment, outbox: Outbox) -> None:
        _require(appt, Status.IN_PROGRESS, action="complete")
        appt.status = Status.COMPLETED
        appt.completed_at = outbox.now
        _save(appt, outbox.now, "status", "completed_at")
        outbox.event(appt, Kind.COMPLETED, actor=actor, from_status=Status.IN_PROGRESS)

    return _run(appointment_id, actor, body)


def cancel(*, actor: User, appointment_id: int, reason: str) -> Appointment:
    reason = _clean_text(reason, field="cancellation reason")

    def body(appt: Appointment, outbox: Outbox) -> None:
        _require(appt, *Appointment.BUSY_STATUSES, action="cancel")
        from_status = appt.status
        appt.status = Status.CANCELLED
        appt.cancellation_reason = Reason.OPERATOR
        appt.cancellation_note = reason
        appt.cancelled_at = outbox.now
        _save(appt, outbox.now, "status", "cancellation_reason", "cancellation_note", "cancelled_at")
        outbox.event(appt, Kind.CANCELLED, actor=actor, from_status=from_status, reason=reason)
        if appt.therapist_id:
            outbox.notify(appt.therapist_id, Say.CANCELLED, appt,
                          f"Appointment #{appt.id} at {_when(appt.starts_at)} was cancelled: {reason}")
        # Whatever the operators were asked to do about it is settled now.
        outbox.handled_for_everyone(appt, Say.NEEDS_ATTENTION,
                                    *([Say.REJECTED] if from_status == Status.REJECTED else []))

    return _run(appointment_id, actor, body)


def hold(*, actor: User, appointment_id: int, on: bool = True) -> Appointment:
    """"Assign by hand" for one booking. While it is on, automatic re-offers skip
    the booking: if it loses its therapist it waits for the operators (with a
    `needs_attention` note) instead of going to the next one. Operators assign
    it as usual either way. Turning it off puts the booking back in the
    automatic chain from its next loss on; it offers nothing by itself. Setting
    what is already set changes nothing and writes no event."""

    def body(appt: Appointment, outbox: Outbox) -> None:
        _require(appt, Status.PENDING, Status.CONFIRMED, Status.REJECTED, action="change assign-by-hand for")
        if appt.held == on:
            return
        appt.held = on
        _save(appt, outbox.now, "held")
        # The operators' own arrangement: not an event of the therapist's.
        outbox.event(appt, Kind.HELD, actor=actor, from_status=appt.status, operators_only=True, held=on)

    return _run(appointment_id, actor, body)


# ---------------------------------------------------------------------------
# Dispatch: moving work instead of cancelling clients. Each of these is a write
# like any other: on an overdue offer the timeout comes first (409
# `deadline_passed`), and from then on the timeout rules take over.
# ---------------------------------------------------------------------------


def reassign(*, actor: User, appointment_id: int, therapist_id: int | None, reason: str) -> Appointment:
    """Take an offered (`pending`, assigned) or `confirmed` appointment from its
    therapist before it starts: to `therapist_id` as a fresh offer (the assign
    checks, a new deadline), or back to the queue when it is None. The previous
    therapist is told; the event carries `data.from_therapist`."""
    reason = _clean_text(reason, field="reason")

    def body(appt: Appointment, outbox: Outbox) -> None:
        _require(appt, Status.PENDING, Status.CONFIRMED, action="reassign")
        previous = appt.therapist
        if previous is None:
            raise WorkflowError("invalid_transition",
                                f"Appointment #{appt.id} is not assigned to anyone; assign it instead.")
        now = outbox.now
        if appt.starts_at <= now:
            raise WorkflowError("invalid_transition", f"Appointment #{appt.id} started at "
                                f"{_when(appt.starts_at)}; it can no longer be reassigned.")
        if therapist_id == previous.id:
            raise WorkflowError("invalid_transition", f"Appointment #{appt.id} is already with "
                                f"{previous.display_name}; choose someone else or the queue.")
        from_status = appt.status
        if therapist_id is None:
            _to_queue(appt)
            _save(appt, now, "status", "therapist", "assigned_at", "response_deadline")
            outbox.event(appt, Kind.REASSIGNED, actor=actor, from_status=from_status, therapist_id=previous.id,
                         from_therapist=previous.id, to_therapist=None, reason=reason)
        else:
            therapist = _lock_free_therapist(appt, therapist_id)
            _save(appt, now, *_offer(appt, therapist, now))
            outbox.event(appt, Kind.REASSIGNED, actor=actor, from_status=from_status,
                         from_therapist=previous.id, to_therapist=therapist.id, reason=reason,
                         response_deadline=appt.response_deadline.isoformat())
            outbox.notify(therapist.id, Say.ASSIGNED, appt, _offer_message(appt))
        outbox.notify(previous.id, Say.REASSIGNED, appt,
                      f"Appointment #{appt.id} ({_when(appt.starts_at)}, {appt.client.name}) is no longer yours: "
                      f"{actor.display_name} reassigned it. {_sentence(reason)}")

    return _run(appointment_id, actor, body, late_code="deadline_passed")


def _to_queue(appt: Appointment) -> None:
    appt.status = Status.PENDING
    appt.therapist = None
    appt.assigned_at = None
    appt.response_deadline = None


def reschedule(*, actor: User, appointment_id: int, starts_at: datetime, reason: str = "") -> Appointment:
    """Move a `pending` or `confirmed` appointment to `starts_at` (`ends_at`
    follows). If its therapist can take the new time (the engine decides, under
    their row lock) it is offered to them again — they must accept the new time —
    otherwise it goes back to the queue and they are told why."""
    reason = _clean_text(reason, field="reason", required=False)

    def body(appt: Appointment, outbox: Outbox) -> None:
        _require(appt, Status.PENDING, Status.CONFIRMED, action="reschedule")
        now = outbox.now
        _check_new_start(starts_at, now)
        if starts_at == appt.starts_at:
            raise WorkflowError("invalid", "Invalid input.", status_code=400, errors={
                "starts_at": [f"Appointment #{appt.id} already starts at {_when(starts_at)}."]})
        old_start, from_status, previous = appt.starts_at, appt.status, appt.therapist
        appt.starts_at = starts_at
        appt.ends_at = starts_at + timedelta(minutes=appt.service.duration_minutes)
        why = None
        if previous is not None:
            why = availability.lock_and_judge(appt, previous.id)[1]
        kept = previous is not None and why is None
        if kept:
            _save(appt, now, "starts_at", "ends_at", *_offer(appt, previous, now))
        else:
            _to_queue(appt)
            _save(appt, now, "starts_at", "ends_at", "status", "therapist", "assigned_at", "response_deadline")
        # Insights reads an event whose therapist is its `from_therapist` as the
        # offer ending without a new one.
        extra = ({"response_deadline": appt.response_deadline.isoformat()} if kept
                 else {"from_therapist": previous.id} if previous else {})
        outbox.event(appt, Kind.RESCHEDULED, actor=actor, from_status=from_status,
                     therapist_id=previous.id if previous else None,
                     from_starts_at=old_start.isoformat(), starts_at=starts_at.isoformat(),
                     kept_therapist=kept, reason=reason, **extra)
        if previous is None:
            return
        moved = (f"Appointment #{appt.id} ({appt.client.name}) was moved from {_when(old_start)} to "
                 f"{_when(starts_at)}" + (f": {_sentence(reason)}" if reason else "."))
        if kept:
            outbox.notify(previous.id, Say.RESCHEDULED, appt,
                          f"{moved} Please accept the new time by {_when(appt.response_deadline)}.")
        else:
            outbox.notify(previous.id, Say.RESCHEDULED, appt,
                          f"{moved} It went back to the operators' queue: at the new time "
                          f"{previous.display_name} {why}.")

    return _run(appointment_id, actor, body, late_code="deadline_passed")


def _check_new_start(starts_at: datetime, now: datetime) -> None:
    if timezone.is_naive(starts_at):
        raise WorkflowError("invalid", "Invalid input.", status_code=400,
                            errors={"starts_at": ["Include the time zone offset."]})
    problem = None
    if starts_at <= now:
        problem = "The start must be in the future."
    elif starts_at > now + timedelta(days=settings.BOOKING_HORIZON_DAYS):
        problem = f"The start must be within {settings.BOOKING_HORIZON_DAYS} days."
    if problem:
        raise WorkflowError("invalid", "Invalid input.", status_code=400, errors={"starts_at": [problem]})


MAX_LOCATION_LENGTH = 500
MAX_NOTES_LENGTH = 2000


def edit(*, actor: User, appointment_id: int, location: str | None = None, notes: str | None = None) -> Appointment:
    """Change where it happens or its notes (None leaves a field as it is). A new
    location must still suit the therapist (the engine's travel rule, under their
    row lock). Changing nothing writes nothing."""
    errors: dict[str, list[str]] = {}
    if location is not None:
        location = location.strip()
        if not location:
            errors["location"] = ["The location cannot be blank."]
        elif len(location) > MAX_LOCATION_LENGTH:
            errors["location"] = [f"At most {MAX_LOCATION_LENGTH} characters."]
    if notes is not None:
        notes = notes.strip()
        if len(notes) > MAX_NOTES_LENGTH:
            errors["notes"] = [f"At most {MAX_NOTES_LENGTH} characters."]
    if errors:
        raise WorkflowError("invalid", "Invalid input.", status_code=400, errors=errors)

    def body(appt: Appointment, outbox: Outbox) -> None:
        _require(appt, *Appointment.BUSY_STATUSES, action="edit")
        changed: list[str] = []
        data: dict = {}
        if location is not None and location != appt.location:
            data["previous_location"], data["location"] = appt.location, location
            appt.location = location
            changed.append("location")
            if appt.therapist_id and appt.status in (Status.PENDING, Status.CONFIRMED):
                _lock_free_therapist(appt, appt.therapist_id)
        if notes is not None and notes != appt.notes:
            appt.notes = notes
            changed.append("notes")
        if not changed:
            return
        _save(appt, outbox.now, *changed)
        outbox.event(appt, Kind.EDITED, actor=actor, from_status=appt.status, fields=changed, **data)
        if appt.therapist_id and appt.status != Status.REJECTED:
            what = [f"the address is now {location}" if "location" in changed else "",
                    "the notes were updated" if "notes" in changed else ""]
            outbox.notify(appt.therapist_id, Say.EDITED, appt,
                          f"Appointment #{appt.id} ({_when(appt.starts_at)}) changed: "
                          + " and ".join(w for w in what if w) + ".")

    return _run(appointment_id, actor, body, late_code="deadline_passed")


# ---------------------------------------------------------------------------
# The batch rules: timeout and no-available-therapist. The sweep loops over
# these; a late write runs `_expire_locked` for its one appointment.
# ---------------------------------------------------------------------------


@dataclass
class SweepAction:
    appointment_id: int
    kind: str  # "timed_out", "no_available_therapist" or "reoffered" (a disabled therapist's other offer)
    line: str
    therapist_disabled: bool = False
    reoffered: bool = False  # it went on to the next therapist (AUTO_REOFFER)


@dataclass
class BatchResult:
    claimed: int = 0
    actions: list[SweepAction] = field(default_factory=list)
    # Where the next batch starts (pass it back as `after`).
    last: tuple | None = None


def _first_missed(appts: Iterable[Appointment]) -> dict[int, Appointment]:
    """The disable rule: a therapist is disabled for their earliest missed
    deadline (deadline, then id) — one reason, one history row, however many
    they missed."""
    first: dict[int, Appointment] = {}
    for appt in sorted(appts, key=lambda a: (a.response_deadline, a.id)):
        first.setdefault(appt.therapist_id, appt)
    return first


def _timeout_line(appt: Appointment, disabled: bool) -> str:
    name = appt.therapist.display_name
    line = f"#{appt.id} cancelled: no response from {name} by {_when(appt.response_deadline)}"
    return line + (f"; {name} disabled" if disabled else f"; {name} was already disabled")


def _expire_locked(appts: list[Appointment], outbox: Outbox) -> list[SweepAction]:
    """Time out these locked, overdue appointments. A fixed number of queries
    however many there are:

    1. cancel them all in one UPDATE;
    2. disable each late therapist once (their earliest miss is the reason), in
       one UPDATE, with one history row each, and close their sockets;
    3. write one event per appointment, tell each therapist about their own, and
       give every operator one digest of the batch — plus one `needs_attention`
       note naming the open jobs the disabled therapists still hold.

    With AUTO_REOFFER on, step 1 puts them back in the queue instead (still
    pending) and step 3 is `_time_out_and_reoffer`: the same events and notes,
    then each goes on to its next therapist within this transaction.
    """
    if not appts:
        return []
    now = outbox.now
    reoffer = settings.AUTO_REOFFER
    if reoffer:
        # Nothing is cancelled: back to the queue, and on to the next therapist below.
        _release_rows([a.id for a in appts], now)
    else:
        Appointment.objects.filter(any_of("id", [a.id for a in appts])).update(
            status=Status.CANCELLED, cancellation_reason=Reason.RESPONSE_TIMEOUT,
            cancelled_at=now, auto_cancelled_at=now, updated_at=now,
        )
    first_missed = _first_missed(appts)
    newly_disabled = set(User.objects.select_for_update().filter(
        id__in=first_missed, is_active=True,
    ).order_by("id").values_list("id", flat=True))
    reasons = {
        tid: f"No response to appointment #{a.id} ({_when(a.starts_at)}) by {_when(a.response_deadline)}"
        for tid, a in first_missed.items() if tid in newly_disabled
    }
    if reasons:
        User.objects.filter(id__in=reasons).update(
            is_active=False, disabled_at=now,
            disabled_reason=Case(*(When(id=tid, then=Value(text)) for tid, text in reasons.items())),
        )
        AccountStatusChange.objects.bulk_create([
            AccountStatusChange(user_id=tid, action=AccountStatusChange.Action.DISABLED, reason=text, created_at=now)
            for tid, text in reasons.items()
        ])
        outbox.disconnect(reasons)
    AppointmentRejection.attach_latest(appts)
    if reoffer:
        return _time_out_and_reoffer(appts, first_missed, newly_disabled, outbox)
    actions = []
    for appt in appts:
        appt.status = Status.CANCELLED
        appt.cancellation_reason = Reason.RESPONSE_TIMEOUT
        appt.cancelled_at = appt.auto_cancelled_at = appt.updated_at = now
        disabled = first_missed[appt.therapist_id] is appt and appt.therapist_id in newly_disabled
        outbox.event(appt, Kind.TIMED_OUT, actor=None, from_status=Status.PENDING, therapist_disabled=disabled)
        outbox.notify(appt.therapist_id, Say.TIMED_OUT, appt,
                      f"You did not answer appointment #{appt.id} ({_when(appt.starts_at)}) by "
                      f"{_when(appt.response_deadline)}: it was cancelled and your account is disabled. "
                      "Ask an operator to re-enable it.")
        actions.append(SweepAction(appt.id, "timed_out", _timeout_line(appt, disabled), disabled))
    ids = [a.id for a in appts]
    n, d = len(ids), len(newly_disabled)
    outbox.notify_operators(
        Say.TIMEOUTS, None,
        f"{n} appointment{'s' if n != 1 else ''} cancelled without a response: {id_list(ids)}"
        + (f"; {d} therapist{'s' if d != 1 else ''} disabled." if d else "."),
    )
    _flag_open_jobs(newly_disabled, outbox)
    return actions


def _flag_open_jobs(therapist_ids: set[int], outbox: Outbox) -> None:
    """A disabled therapist keeps nothing silently: their other open jobs (pending
    or confirmed, start ahead) are named to every operator, to reassign."""
    if not therapist_ids:
        return
    jobs = list(Appointment.objects.filter(therapist_id__in=therapist_ids).open_ahead(outbox.now)
                .select_related("therapist").order_by("therapist_id", "starts_at", "id")[:200])
    by_therapist: dict[int, list[Appointment]] = {}
    for job in jobs:
        by_therapist.setdefault(job.therapist_id, []).append(job)
    parts = [
        f"{items[0].therapist.display_name} was disabled and still holds "
        + ", ".join(f"#{a.id} ({_when(a.starts_at)})" for a in items[:20])
        + (f" and {len(items) - 20} more" if len(items) > 20 else "")
        for items in by_therapist.values()
    ]
    if parts:
        only = jobs[0] if len(jobs) == 1 else None
        outbox.notify_operators(Say.NEEDS_ATTENTION, only, "; ".join(parts) + ". Reassign or cancel them.")


def _unstaffable_line(appt: Appointment, now: datetime) -> str:
    why = "its start time has passed" if appt.starts_at <= now else "no therapist is available for it"
    return (f"#{appt.id} cancelled: {appt.service.name} for {appt.client.name} at {_when(appt.starts_at)}, "
            f"{why}")


def _cancel_unstaffable_locked(appts: list[Appointment], outbox: Outbox) -> list[SweepAction]:
    if not appts:
        return []
    now = outbox.now
    Appointment.objects.filter(any_of("id", [a.id for a in appts])).update(
        status=Status.CANCELLED, cancellation_reason=Reason.NO_AVAILABLE_THERAPIST,
        cancelled_at=now, auto_cancelled_at=now, updated_at=now,
    )
    AppointmentRejection.attach_latest(appts)
    actions = []
    for appt in appts:
        appt.status = Status.CANCELLED
        appt.cancellation_reason = Reason.NO_AVAILABLE_THERAPIST
        appt.cancelled_at = appt.auto_cancelled_at = appt.updated_at = now
        outbox.event(appt, Kind.NO_AVAILABLE_THERAPIST, actor=None, from_status=Status.PENDING)
        actions.append(SweepAction(appt.id, "no_available_therapist", _unstaffable_line(appt, now)))
    if len(appts) == 1:
        message = actions[0].line
    else:
        message = (f"{len(appts)} appointments cancelled, no therapist could take them in time: "
                   f"{id_list([a.id for a in appts])}.")
    outbox.notify_operators(Say.UNSTAFFED, None, message)
    return actions


# Columns of the claimed rows' joins that timing them out never reads.
_SWEEP_UNUSED = ("client__email", "client__notes", "client__created_at", "service__price",
                 "therapist__password", "therapist__last_login", "therapist__date_joined", "therapist__email",
                 "therapist__disabled_reason", "therapist__calendar_secret")


def expire_overdue(*, batch_size: int = 500, dry_run: bool = False, after: tuple | None = None) -> BatchResult:
    """Claim up to `batch_size` overdue appointments nobody else holds
    (`skip_locked`, so sweeps on several hosts never share a row) and time them out.

    Batches walk the deadline index from `after` (the last batch's deadline and
    id) instead of from its start: the rows a batch cancels leave dead entries in
    the partial index until vacuum, and scanning past them again at every batch
    would make a backlog of N cost N²."""
    with transaction.atomic():
        now = timezone.now()
        qs = Appointment.objects.overdue(now).select_related("client", "service", "therapist")
        if dry_run:
            appts = list(qs.filter(id__gt=after[0] if after else 0).order_by("id")[:batch_size])
            # The real run claims in deadline order, so a therapist's earliest miss
            # among everything due is where it disables them, whichever batch it is in.
            first_missed = _first_missed(
                Appointment.objects.overdue(now).filter(therapist_id__in={a.therapist_id for a in appts})
                .only("id", "therapist_id", "response_deadline"))
            lines = []
            for appt in appts:
                first = appt.therapist.is_active and first_missed[appt.therapist_id].id == appt.id
                line = (_reoffer_timeout_line(appt, appt.therapist, appt.response_deadline, first,
                                              "it goes on to the next available therapist")
                        if settings.AUTO_REOFFER else _timeout_line(appt, first))
                lines.append(SweepAction(appt.id, "timed_out", line, first))
            return BatchResult(len(appts), lines, (appts[-1].id,) if appts else after)
        claim = Appointment.objects.overdue(now)
        if after:
            deadline, last_id = after
            claim = claim.filter(Q(response_deadline__gt=deadline) | Q(response_deadline=deadline, id__gt=last_id))
        # Claim by the index alone (no joins: the lock then reads the few rows it
        # needs, not a sorted join of the whole backlog), and read the claimed rows
        # in the same statement. The outer lock re-reads each row at its latest
        # version (ours already: no wait) rather than the statement's snapshot.
        claimed = claim.order_by("response_deadline", "id").select_for_update(skip_locked=True).values("id")
        appts = list(qs.filter(id__in=claimed[:batch_size]).select_for_update(of=("self",))
                     .defer(*_SWEEP_UNUSED).order_by("response_deadline", "id"))
        # Taken before the rules run: a re-offer gives the row a new deadline.
        last = (appts[-1].response_deadline, appts[-1].id) if appts else after
        outbox = Outbox(now)
        actions = _expire_locked(appts, outbox)
        outbox.flush()
    return BatchResult(len(appts), actions, last)


def cancel_unstaffable(*, batch_size: int = 500, dry_run: bool = False, after: tuple | None = None) -> BatchResult:
    """The no-available-therapist rule for the unassigned pending bookings that
    cannot wait any longer: their start has passed, or it is within the response
    window and nobody could take them. Walks by id (`after`) because the ones
    somebody can still take stay pending."""
    with transaction.atomic():
        now = timezone.now()
        qs = (Appointment.objects.filter(status=Status.PENDING, therapist__isnull=True,
                                         starts_at__lte=now + response_window(), id__gt=after[0] if after else 0)
              .select_related("client", "service").order_by("id"))
        if not dry_run:
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        appts = list(qs[:batch_size])
        staffable = availability.staffable([a for a in appts if a.starts_at > now])
        doomed = [a for a in appts if a.starts_at <= now or a.id not in staffable]
        last = (appts[-1].id,) if appts else after
        if dry_run:
            return BatchResult(len(appts), [SweepAction(a.id, "no_available_therapist", _unstaffable_line(a, now))
                                            for a in doomed], last)
        outbox = Outbox(now)
        actions = _cancel_unstaffable_locked(doomed, outbox)
        outbox.flush()
    return BatchResult(len(appts), actions, last)


@dataclass
class SweepCounts:
    timed_out: int = 0
    therapists_disabled: int = 0
    no_available_therapist: int = 0
    reminded: int = 0
    escalated: int = 0
    # Automatic offers the sweep made (AUTO_REOFFER); not part of the API's answer.
    reoffered: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"timed_out": self.timed_out, "therapists_disabled": self.therapists_disabled,
                "no_available_therapist": self.no_available_therapist,
                "reminded": self.reminded, "escalated": self.escalated}


def sweep(*, batch_size: int = 500, dry_run: bool = False,
          report: Callable[[SweepAction], None] | None = None) -> SweepCounts:
    """Run both rules over everything due, batch by batch, until nothing is left;
    then remind and escalate the unseen offers (scheduling.reach)."""
    counts = SweepCounts()

    def handle(result: BatchResult) -> None:
        for action in result.actions:
            counts.reoffered += action.reoffered
            if action.kind == "timed_out":
                counts.timed_out += 1
                counts.therapists_disabled += action.therapist_disabled
            elif action.kind == "no_available_therapist":
                counts.no_available_therapist += 1
            if report:
                report(action)

    for rule in (expire_overdue, cancel_unstaffable):
        after = None
        while True:
            result = rule(batch_size=batch_size, dry_run=dry_run, after=after)
            handle(result)
            after = result.last
            # A short batch means nothing more is due (or the rest is held by
            # another sweep, which will finish it).
            if result.claimed < batch_size:
                break
    # Then the offers nobody has seen: the reminder email and the operators' escalation.
    from .reach import reach_unseen  # here, not at the top: reach builds on this module

    counts.reminded, counts.escalated = reach_unseen(batch_size=batch_size, dry_run=dry_run, report=report)
    return counts


# ---------------------------------------------------------------------------
# Re-offer (AUTO_REOFFER): a booking that loses its therapist (a timeout, an
# accepted rejection, a therapist disabled) goes on to the next one at once.
# It runs inside the transaction of the rule that released the booking, over
# that rule's whole batch: a fixed number of queries per batch.
# ---------------------------------------------------------------------------

# Too close to the start to wait for another answer: the operators phone round.
REOFFER_MIN_LEAD = timedelta(minutes=10)
# Rounds of "pick, lock, check again" before a booking is left to the operators.
# A round repeats only for the few picks another transaction got to first.
REOFFER_ROUNDS = 4
# Up to this many waiting bookings each get their own needs_attention note; more
# (a mass timeout) are named in one note, so the operators are not buried.
ATTENTION_EACH_UP_TO = 20


def reoffer_deadline(appt: Appointment, now: datetime) -> datetime:
    """An automatic offer's answer-by time: the normal window, or half the time
    left before the start when that is shorter."""
    return now + min(response_window(), (appt.starts_at - now) / 2)


def _why_no_reoffer(appt: Appointment, now: datetime) -> str | None:
    if appt.held:
        return "an operator assigns it by hand"
    if appt.starts_at <= now:
        return "its start time has passed"
    if appt.starts_at - now < REOFFER_MIN_LEAD:
        return f"it starts in less than {int(REOFFER_MIN_LEAD.total_seconds() // 60)} minutes"
    if appt.auto_offers >= settings.REOFFER_MAX:
        return f"its automatic offers are used up ({appt.auto_offers} of {settings.REOFFER_MAX})"
    return None


def _release_rows(ids: list[int], now: datetime) -> None:
    """Back to the queue (still pending), in one UPDATE."""
    Appointment.objects.filter(id__in=ids).update(therapist=None, assigned_at=None, response_deadline=None,
                                                  updated_at=now)


def _release(appt: Appointment, now: datetime) -> None:
    appt.therapist = None
    appt.assigned_at = None
    appt.response_deadline = None
    appt.updated_at = now


@dataclass
class _Reoffers:
    chosen: dict[int, User] = field(default_factory=dict)  # appointment id -> its new therapist (locked)
    waiting: dict[int, str] = field(default_factory=dict)  # appointment id -> why it got no offer
    someone_free: set[int] = field(default_factory=set)  # waiting ones somebody could still take
    cancelled: list[SweepAction] = field(default_factory=list)


def _choose_therapists(appts: list[Appointment], now: datetime) -> _Reoffers:
    """Each released booking's next therapist: the first of its ranked list (what
    `available_therapists` would show) still free after the earlier bookings of
    the batch took theirs, earliest start first.

    The whole batch is evaluated at once (`availability.Planner`). The picked
    therapists are then locked in one statement, ordered by id, with
    `skip_locked`: a therapist another transaction is booking at this moment is
    passed over rather than waited for, so two sweeps (or a sweep and an
    operator) can never deadlock on each other's therapists. Under the lock
    the picks are checked again on what is committed; the rare pick that no
    longer holds is made again in another round.
    """
    result = _Reoffers()
    for appt in appts:
        why = _why_no_reoffer(appt, now)
        if why:
            result.waiting[appt.id] = why
    planner = availability.Planner(appts)
    todo = sorted((a for a in appts if a.id not in result.waiting), key=lambda a: (a.starts_at, a.id))
    picks: dict[int, int] = {}
    locked: dict[int, User] = {}
    passed_over: set[int] = set()
    # Found nobody free with nobody passed over: later offers only take therapists away.
    nobody: set[int] = set()
    for _ in range(REOFFER_ROUNDS):
        for appt in todo:
            tid = planner.best(appt, passed_over)
            if tid is None:
                if not passed_over:
                    nobody.add(appt.id)
            else:
                planner.take(appt, tid)
                picks[appt.id] = tid
        new = {picks[a.id] for a in todo if a.id in picks} - locked.keys()
        if new:
            got = {u.id: u for u in User.objects.select_for_update(skip_locked=True).filter(id__in=new).order_by("id")}
            locked.update(got)
            passed_over |= new - got.keys()
            planner.refresh(got)
        retry = []
        for appt in todo:
            tid = picks.get(appt.id)
            if tid is not None and (tid in passed_over or planner.why_not(appt, tid)):
                planner.give_back(appt, tid)
                del picks[appt.id]
                retry.append(appt)
        todo = retry
        if not todo:
            break
    window_end = now + response_window()
    for appt in appts:
        if appt.id in picks:
            result.chosen[appt.id] = locked[picks[appt.id]]
            continue
        result.waiting.setdefault(appt.id, "no therapist is available for it")
        # Only needed where the no-available-therapist rule could apply (see _reoffer_locked).
        if now < appt.starts_at <= window_end and appt.id not in nobody and planner.anyone(appt):
            result.someone_free.add(appt.id)
    return result


def _reoffer_locked(appts: list[Appointment], outbox: Outbox) -> _Reoffers:
    """Offer each of these locked, pending, unassigned bookings to its next
    therapist: an `assigned` event with no actor and `data.auto`, with the
    adaptive window, counted in `auto_offers`. A booking that gets no offer
    waits for the operators with a `needs_attention` note; the
    no-available-therapist rule cancels it at once only when nobody can take it
    in time (its start has passed, or is within the response window with no
    therapist free). The event that released each booking records why it got
    no offer (`data.waiting`), so its history says where the chain stopped."""
    now = outbox.now
    result = _choose_therapists(appts, now)
    offered = [a for a in appts if a.id in result.chosen]
    fields: tuple[str, ...] = ()
    for appt in offered:
        appt.auto_offers += 1
        fields = _open_offer(appt, result.chosen[appt.id], outbox, actor=None,
                             deadline=reoffer_deadline(appt, now), auto=True, auto_offer=appt.auto_offers)
    _save_many(offered, now, *fields, "auto_offers")
    waiting = [a for a in appts if a.id in result.waiting]
    if not waiting:
        return result
    released_by = {appt.id: event for event, appt in outbox.events}
    for appt in waiting:
        if appt.id in released_by:
            released_by[appt.id].data["waiting"] = result.waiting[appt.id]
    doomed = [a for a in waiting if a.starts_at <= now or (
        a.starts_at <= now + response_window() and a.id not in result.someone_free)]
    result.cancelled = _cancel_unstaffable_locked(doomed, outbox)
    gone = {a.id for a in doomed}
    _needs_attention([a for a in waiting if a.id not in gone], result.waiting, outbox)
    return result


def _needs_attention(appts: list[Appointment], why: dict[int, str], outbox: Outbox) -> None:
    if not appts:
        return
    if len(appts) > ATTENTION_EACH_UP_TO:
        outbox.notify_operators(
            Say.NEEDS_ATTENTION, None,
            f"{len(appts)} appointments were not offered to anyone and wait for a therapist: "
            f"{id_list([a.id for a in appts])}. Assign them by hand.")
        return
    for appt in appts:
        outbox.notify_operators(
            Say.NEEDS_ATTENTION, appt,
            f"#{appt.id} ({_when(appt.starts_at)}, {appt.service.name} for {appt.client.name}) was not offered "
            f"to anyone: {why[appt.id]}. Assign it by hand.")


def _time_out_and_reoffer(appts: list[Appointment], first_missed: dict[int, Appointment],
                          newly_disabled: set[int], outbox: Outbox) -> list[SweepAction]:
    """The rest of the timeout with re-offer on (`_expire_locked` has released
    the rows and disabled the late therapists): the events and notes, the
    operators' digest, then the next offers — for these bookings and for the
    disabled therapists' other offers not yet due, which would otherwise sit
    with someone who cannot answer them."""
    now = outbox.now
    late = {a.id: (a.therapist, a.response_deadline) for a in appts}
    for appt in appts:
        _release(appt, now)
    # Held ones stay (and are named by _flag_open_jobs); rows another transaction
    # holds right now are skipped rather than waited for (lock order).
    others = list(Appointment.objects.filter(
        therapist_id__in=newly_disabled, status=Status.PENDING, held=False, starts_at__gt=now,
    ).not_overdue(now).select_related("client", "service", "therapist")
        .select_for_update(skip_locked=True, of=("self",)).order_by("id"))
    if others:
        _release_rows([o.id for o in others], now)
        AppointmentRejection.attach_latest(others)
    previous = {}
    for other in others:
        previous[other.id] = other.therapist
        _release(other, now)
        outbox.event(other, Kind.REASSIGNED, actor=None, from_status=Status.PENDING,
                     therapist_id=previous[other.id].id, auto=True, from_therapist=previous[other.id].id,
                     reason="therapist disabled")
        outbox.notify(previous[other.id].id, Say.REASSIGNED, other,
                      f"Appointment #{other.id} ({_when(other.starts_at)}) was taken back from you because your "
                      "account is disabled.")
    disabled_now = {}
    for appt in appts:
        therapist, missed = late[appt.id]
        disabled_now[appt.id] = first_missed[therapist.id] is appt and therapist.id in newly_disabled
        outbox.event(appt, Kind.TIMED_OUT, actor=None, from_status=Status.PENDING, therapist_id=therapist.id,
                     therapist_disabled=disabled_now[appt.id], auto=True, response_deadline=missed.isoformat())
        outbox.notify(therapist.id, Say.TIMED_OUT, appt,
                      f"You did not answer appointment #{appt.id} ({_when(appt.starts_at)}) by {_when(missed)}: "
                      "it was taken back from you and your account is disabled. Ask an operator to re-enable it.")
    result = _reoffer_locked(appts + others, outbox)

    def outcome(appt: Appointment) -> str:
        if appt.id in result.chosen:
            return f"offered to {appt.therapist.display_name}, answer by {_when(appt.response_deadline)}"
        if any(action.appointment_id == appt.id for action in result.cancelled):
            return f"not offered ({result.waiting[appt.id]})"
        return f"waits for an operator ({result.waiting[appt.id]})"

    actions = [SweepAction(a.id, "timed_out", _reoffer_timeout_line(a, *late[a.id], disabled_now[a.id], outcome(a)),
                           disabled_now[a.id], reoffered=a.id in result.chosen) for a in appts]
    actions += [SweepAction(o.id, "reoffered", f"#{o.id} taken back from {previous[o.id].display_name} (disabled); "
                            f"{outcome(o)}", reoffered=o.id in result.chosen) for o in others]
    actions += result.cancelled
    ids = [a.id for a in appts]
    n, d = len(ids), len(newly_disabled)
    offered = sum(a.id in result.chosen for a in appts)
    cancelled = sum(1 for action in result.cancelled if action.appointment_id in late)
    parts = [f"{offered} offered to the next therapist"] if offered else []
    if n - offered - cancelled:
        parts.append(f"{n - offered - cancelled} waiting for you")
    if cancelled:
        parts.append(f"{cancelled} cancelled, nobody can take them in time")
    if d:
        parts.append(f"{d} therapist{'s' if d != 1 else ''} disabled")
    outbox.notify_operators(
        Say.TIMEOUTS, None,
        f"{n} appointment{'s' if n != 1 else ''} not answered in time: {id_list(ids)}; " + ", ".join(parts) + ".",
    )
    _flag_open_jobs(newly_disabled, outbox)
    return actions


def _reoffer_timeout_line(appt: Appointment, therapist: User, missed: datetime, disabled: bool, outcome: str) -> str:
    name = therapist.display_name
    return (f"#{appt.id} timed out: no response from {name} by {_when(missed)}; "
            + (f"{name} disabled" if disabled else f"{name} was already disabled") + f"; {outcome}")

# ---------------------------------------------------------------------------
# Therapist accounts and availability.
# ---------------------------------------------------------------------------


def enable_therapist(*, actor: User, therapist_id: int, note: str = "") -> User:
    note = _clean_text(note, field="note", required=False)
    with transaction.atomic():
        therapist = User.objects.select_for_update().filter(pk=therapist_id, role=User.Role.THERAPIST).first()
        if therapist is None:
            raise WorkflowError("not_found", "No such therapist.", status_code=404)
        if therapist.is_active:
            raise WorkflowError("invalid_transition", f"{therapist.display_name} is already active.")
        now = timezone.now()
        therapist.is_active = True
        therapist.disabled_at = None
        therapist.disabled_reason = ""
        therapist.save(update_fields=["is_active", "disabled_at", "disabled_reason"])
        AccountStatusChange.objects.create(user=therapist, action=AccountStatusChange.Action.ENABLED,
                                           reason=note, changed_by=actor, created_at=now)
        outbox = Outbox(now)
        outbox.notify(therapist.id, Say.ENABLED, None,
                      f"Your account was re-enabled by {actor.display_name}" + (f": {note}" if note else "."))
        outbox.flush()
    return therapist


def add_availability(*, actor: User, therapist: User, starts_at: datetime, ends_at: datetime) -> Availability:
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=therapist.pk).first()
        clash = Availability.objects.filter(therapist=therapist, starts_at__lt=ends_at, ends_at__gt=starts_at).first()
        if clash:
            raise WorkflowError("invalid", "Invalid input.", status_code=400, errors={
                "starts_at": [f"Overlaps your slot {_span(clash.starts_at, clash.ends_at)}."],
            })
        return Availability.objects.create(therapist=therapist, starts_at=starts_at, ends_at=ends_at)


def delete_availability(*, actor: User, availability_id: int) -> None:
    with transaction.atomic():
        slot = Availability.objects.filter(pk=availability_id).first()
        if slot is None or (actor.is_therapist and slot.therapist_id != actor.id):
            raise WorkflowError("not_found", "No such availability slot.", status_code=404)
        # Same lock as assign: nobody can be booked into the slot while it goes.
        User.objects.select_for_update().filter(pk=slot.therapist_id).first()
        open_appt = Appointment.objects.filter(
            therapist_id=slot.therapist_id, status__in=Appointment.BUSY_STATUSES,
            starts_at__gte=slot.starts_at, ends_at__lte=slot.ends_at,
        ).order_by("starts_at").first()
        if open_appt:
            raise WorkflowError("slot_in_use", f"Appointment #{open_appt.id} at {_when(open_appt.starts_at)} "
                                "lies in this slot; cancel or reassign it first.")
        slot.delete()


# ---------------------------------------------------------------------------
# Offers and their receipts: reaching the therapist (see scheduling.reach for
# the reminder and the escalation the sweep runs).
# ---------------------------------------------------------------------------

RECEIPT_FIELDS = {Kind.DELIVERED: "offer_delivered_at", Kind.SEEN: "offer_seen_at"}


def _start_offer(appt: Appointment, now: datetime) -> tuple[str, ...]:
    """A new offer of `appt` to the therapist just set on it (with its fresh
    `response_deadline` already set): the next offer number, the receipts start
    again, and each of the therapist's devices gets a Web Push after the commit.

    Every way an appointment is put to a therapist with a fresh deadline calls
    this (assign; reassign and automatic re-offer alike); a denied rejection
    continues the same offer and does not. Returns the fields to save with the
    caller's `_save`."""
    appt.offer_number += 1
    appt.offer_sent_at = now
    appt.offer_delivered_at = appt.offer_seen_at = None
    appt.offer_reminded_at = appt.offer_escalated_at = None
    _push_offer(appt, now)
    return OFFER_RECEIPT_FIELDS


def _push_offer(appt: Appointment, now: datetime, *, title: str = "") -> None:
    """The push of the current offer: who, what, when and by when to answer; a tap
    opens the appointment on the therapist page."""
    deadline = appt.response_deadline
    first_name = (appt.client.name.split() or ["A client"])[0]
    push.send_on_commit(appt.therapist_id, {
        "title": title or f"New appointment #{appt.id}: answer by {formatting.when(deadline, now=now)}",
        "body": f"{first_name} · {appt.service.name} · {formatting.when(appt.starts_at, now=now)}",
        "appointment": appt.id,
        "offer": appt.offer_number,
        "client": first_name,
        "service": appt.service.name,
        "starts_at": timezone.localtime(appt.starts_at).isoformat(),
        "answer_by": timezone.localtime(deadline).isoformat(),
        "url": f"/therapist/?appointment={appt.id}",
        "tag": f"appointment-{appt.id}",
    }, ttl=int((deadline - now).total_seconds()), topic=f"appointment-{appt.id}")


def receipt(*, actor: User, appointment_id: int, kind: str, offer: int | None = None) -> Appointment:
    """The therapist's device reports that the current offer reached it
    (`delivered`) or is on screen in a visible tab (`seen`, which implies
    delivered). Each is stored once per offer, with an event (no status change)
    that the operators see live; a repeat changes nothing. With `offer`, a
    receipt for an older offer than the current one is refused (409)."""
    if kind not in RECEIPT_FIELDS:
        raise WorkflowError("invalid", "Invalid input.", status_code=400,
                            errors={"kind": ["Must be 'delivered' or 'seen'."]})

    def body(appt: Appointment, outbox: Outbox) -> None:
        if not actor.is_therapist:
            raise WorkflowError("permission_denied", "Only the assigned therapist sends receipts.", status_code=403)
        if appt.status != Status.PENDING or not appt.offer_number:
            raise WorkflowError("invalid_transition", f"Appointment #{appt.id} is {appt.status.replace('_', ' ')}: "
                                "it has no offer waiting for your answer.")
        if offer is not None and offer != appt.offer_number:
            raise WorkflowError("invalid_transition", f"Offer {offer} of appointment #{appt.id} is over; "
                                f"offer {appt.offer_number} is the current one.")
        field = RECEIPT_FIELDS[kind]
        if getattr(appt, field) is not None:
            return  # stored once per offer
        now = outbox.now
        setattr(appt, field, now)
        fields = [field]
        if kind == Kind.SEEN and appt.offer_delivered_at is None:
            appt.offer_delivered_at = now  # on screen means it reached the device
            fields.append("offer_delivered_at")
        _save(appt, now, *fields)
        outbox.event(appt, kind, actor=actor, from_status=Status.PENDING, offer=appt.offer_number)

    return _run(appointment_id, actor, body, late_code="deadline_passed")
