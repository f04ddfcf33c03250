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
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, Max, Q, Value, When
from django.utils import timezone

from accounts.models import AccountStatusChange, User
from notifications import push, realtime
from notifications.models import Notification
from notifications.payloads import notification_json

from . import timefmt
from .models import Appointment, AppointmentEvent, AppointmentRejection, Availability, Client, Service
from .payloads import appointment_json, appointment_json_for

logger = logging.getLogger(__name__)

Status = Appointment.Status
Kind = AppointmentEvent.Kind
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


def _hhmm(value: datetime) -> str:
    return timezone.localtime(value).strftime("%H:%M")


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _when(value: datetime) -> str:
    return timezone.localtime(value).strftime("%a %d %b %H:%M")


# ---------------------------------------------------------------------------
# The outbox: events, notifications and socket messages of one transaction.
# ---------------------------------------------------------------------------


class _Outbox:
    """Collects what one transaction records, writes it with one `bulk_create`
    per table, and schedules the socket messages for after the commit."""

    def __init__(self, now: datetime):
        self.now = now
        self.events: list[tuple[AppointmentEvent, Appointment]] = []
        self.notifications: list[Notification] = []
        self.disconnect_user_ids: list[int] = []
        self._operator_ids: list[int] | None = None

    def event(self, appointment: Appointment, kind: str, *, actor: User | None, from_status: str,
              therapist_id: int | None = None, **data) -> None:
        self.events.append((AppointmentEvent(
            appointment=appointment, kind=kind, actor=actor,
            therapist_id=therapist_id if therapist_id is not None else appointment.therapist_id,
            from_status=from_status, to_status=appointment.status, data=data, created_at=self.now,
        ), appointment))

    def notify(self, recipient_id: int, kind: str, appointment: Appointment | None, message: str) -> None:
        self.notifications.append(Notification(
            recipient_id=recipient_id, kind=kind, appointment=appointment, message=message[:1000],
            created_at=self.now,
        ))

    def notify_operators(self, kind: str, appointment: Appointment, message: str) -> None:
        if self._operator_ids is None:
            self._operator_ids = list(
                User.objects.filter(role=User.Role.OPERATOR, is_active=True).values_list("id", flat=True)
            )
        for operator_id in self._operator_ids:
            self.notify(operator_id, kind, appointment, message)

    def flush(self) -> None:
        events = AppointmentEvent.objects.bulk_create([event for event, _ in self.events])
        notifications = Notification.objects.bulk_create(self.notifications)
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
        if notifications:
            recipients = {n.recipient_id for n in notifications}
            unread = dict(
                Notification.objects.filter(recipient_id__in=recipients, read_at__isnull=True)
                .values("recipient_id").annotate(n=Count("id")).values_list("recipient_id", "n")
            )
            for notification in notifications:
                messages.append((realtime.user_group(notification.recipient_id), {
                    "type": "notification", "notification": notification_json(notification),
                    "unread": unread.get(notification.recipient_id, 0),
                }))
        for user_id in self.disconnect_user_ids:
            messages.extend(realtime.disconnect_user(user_id))
        realtime.publish_on_commit(messages)


# ---------------------------------------------------------------------------
# Availability: one engine answers "who could take this appointment now?" for
# assign, the ranked list and the sweep's no-available-therapist rule alike.
# ---------------------------------------------------------------------------


def _evaluate(appointments: list[Appointment], *, therapist_ids: Iterable[int] | None = None,
              ) -> dict[int, dict[int, str | None]]:
    """For each appointment, each candidate therapist -> None if `assign` would
    accept them right now, else the reason it would not. Candidates are the given
    therapists, or everyone qualified for the appointment's service. A fixed
    number of queries for the whole list."""
    if not appointments:
        return {}
    service_ids = {a.service_id for a in appointments}
    qualified: dict[int, set[int]] = defaultdict(set)
    through = Service.therapists.through.objects.filter(service_id__in=service_ids)
    if therapist_ids is not None:
        therapist_ids = set(therapist_ids)
        through = through.filter(user_id__in=therapist_ids)
    for service_id, user_id in through.values_list("service_id", "user_id"):
        qualified[service_id].add(user_id)
    candidate_ids = therapist_ids if therapist_ids is not None else set().union(*qualified.values())
    users = {u.id: u for u in User.objects.filter(id__in=candidate_ids)}
    if not users:
        return {a.id: {} for a in appointments}

    lo = min(a.starts_at for a in appointments)
    hi = max(a.ends_at for a in appointments)
    slots: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for tid, start, end in Availability.objects.filter(
        therapist_id__in=users, starts_at__lte=hi, ends_at__gte=lo,
    ).values_list("therapist_id", "starts_at", "ends_at"):
        slots[tid].append((start, end))
    busy: dict[int, list[tuple[int, datetime, datetime]]] = defaultdict(list)
    for appt_id, tid, start, end in Appointment.objects.filter(
        therapist_id__in=users, status__in=Appointment.BUSY_STATUSES, starts_at__lt=hi, ends_at__gt=lo,
    ).values_list("id", "therapist_id", "starts_at", "ends_at"):
        busy[tid].append((appt_id, start, end))
    excluded = set(AppointmentRejection.objects.filter(
        appointment_id__in=[a.id for a in appointments if a.id],
        review_decision=AppointmentRejection.Decision.ACCEPT,
    ).values_list("appointment_id", "therapist_id"))

    result: dict[int, dict[int, str | None]] = {}
    for appt in appointments:
        verdicts: dict[int, str | None] = {}
        ids = therapist_ids if therapist_ids is not None else qualified.get(appt.service_id, set())
        for tid in ids:
            user = users.get(tid)
            verdicts[tid] = _verdict(appt, user, qualified, slots, busy, excluded)
        result[appt.id] = verdicts
    return result


def _verdict(appt, user, qualified, slots, busy, excluded) -> str | None:
    if user is None or user.role != User.Role.THERAPIST:
        return "is not a therapist"
    if not user.is_active:
        return "is disabled"
    if user.id not in qualified.get(appt.service_id, ()):
        return f"is not qualified for {appt.service.name}"
    if (appt.id, user.id) in excluded:
        return "had their rejection of this appointment accepted"
    if not any(start <= appt.starts_at and appt.ends_at <= end for start, end in slots.get(user.id, ())):
        return f"has no availability covering {_when(appt.starts_at)}–{_hhmm(appt.ends_at)}"
    for other_id, start, end in busy.get(user.id, ()):
        # Back-to-back is fine: only a real overlap blocks.
        if other_id != appt.id and start < appt.ends_at and appt.starts_at < end:
            return f"already has appointment #{other_id} at {_hhmm(start)}–{_hhmm(end)}"
    return None


@dataclass
class RankedTherapist:
    therapist: User
    appointments_that_day: int
    last_appointment_end: datetime | None


def available_therapists(appointment: Appointment) -> list[RankedTherapist]:
    """The therapists `assign` would accept right now, best first: fewest
    appointments that (local) day, then longest since their last one."""
    if (appointment.status != Status.PENDING or appointment.therapist_id is not None
            or appointment.starts_at <= timezone.now()):
        return []  # assign would refuse anyone
    verdicts = _evaluate([appointment]).get(appointment.id, {})
    free_ids = [tid for tid, reason in verdicts.items() if reason is None]
    if not free_ids:
        return []
    day_start = timezone.localtime(appointment.starts_at).replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = day_start + timedelta(days=1)
    stats = {
        row["id"]: row for row in User.objects.filter(id__in=free_ids).annotate(
            day_count=Count("appointments", filter=Q(
                appointments__starts_at__gte=day_start, appointments__starts_at__lt=day_end,
            ) & ~Q(appointments__status=Status.CANCELLED)),
            last_end=Max("appointments__ends_at", filter=Q(
                appointments__ends_at__lte=appointment.starts_at,
            ) & ~Q(appointments__status=Status.CANCELLED)),
        ).values("id", "day_count", "last_end")
    }
    users = {u.id: u for u in User.objects.filter(id__in=free_ids)}
    ranked = [RankedTherapist(users[tid], stats[tid]["day_count"], stats[tid]["last_end"]) for tid in free_ids]
    epoch = datetime.min.replace(tzinfo=timezone.get_current_timezone())
    ranked.sort(key=lambda r: (r.appointments_that_day, r.last_appointment_end or epoch, r.therapist.display_name))
    return ranked


# ---------------------------------------------------------------------------
# Running one transition.
# ---------------------------------------------------------------------------


def _lock(appointment_id: int) -> Appointment:
    # Lock first, then read the row with its relations in a second statement.
    # A `FOR UPDATE` that had to wait for another transaction returns the new
    # version of the locked row but the *old* rows of the tables joined to it:
    # after a concurrent assign, `therapist_id` would be set and `therapist` None.
    if not Appointment.objects.select_for_update().filter(pk=appointment_id).values_list("pk", flat=True):
        raise _not_found()
    return Appointment.objects.select_related("client", "service", "therapist").get(pk=appointment_id)


def _is_overdue(appt: Appointment, now: datetime) -> bool:
    return (
        appt.status == Status.PENDING and appt.therapist_id is not None
        and appt.response_deadline is not None and appt.response_deadline <= now
    )


def _run(appointment_id: int, actor: User, body: Callable[[Appointment, _Outbox], None], *,
         late_code: str = "invalid_transition") -> Appointment:
    """Lock the appointment and apply `body`; if it is overdue, commit the timeout
    first and refuse with `late_code`."""
    with transaction.atomic():
        appt = _lock(appointment_id)
        # Before anything else: someone else's appointment is "not found", and
        # touching it must not even apply its timeout.
        _require_own(appt, actor)
        now = timezone.now()
        outbox = _Outbox(now)
        overdue = _is_overdue(appt, now)
        if overdue:
            _expire_locked([appt], outbox)
        else:
            body(appt, outbox)
        outbox.flush()
    if overdue:
        # Raised after the atomic block: the timeout above is committed.
        raise _too_late(appt, late_code)
    return appt


def _too_late(appt: Appointment, code: str) -> WorkflowError:
    return WorkflowError(
        code,
        f"The answer was due by {_hhmm(appt.response_deadline)}; appointment #{appt.id} "
        "has been cancelled for no response.",
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
    """A therapist acts only on their own appointment; anyone else's is 'not found'."""
    if actor.is_therapist and appt.therapist_id != actor.id:
        raise _not_found()


def _save(appt: Appointment, now: datetime, *fields: str) -> None:
    appt.updated_at = now
    appt.save(update_fields=[*fields, "updated_at"])


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
        outbox = _Outbox(now)
        outbox.event(appt, Kind.CREATED, actor=actor, from_status="")
        if therapist_id is not None:
            _assign_locked(appt, therapist_id, actor, outbox)
        outbox.flush()
    return appt


def assign(*, actor: User, appointment_id: int, therapist_id: int) -> Appointment:
    return _run(appointment_id, actor, lambda appt, outbox: _assign_locked(appt, therapist_id, actor, outbox))


def _assign_locked(appt: Appointment, therapist_id: int, actor: User, outbox: _Outbox) -> None:
    _require(appt, Status.PENDING, action="assign")
    if appt.therapist_id is not None:
        raise WorkflowError("invalid_transition",
                            f"Appointment #{appt.id} is already assigned to {appt.therapist.display_name}.")
    now = outbox.now
    if appt.starts_at <= now:
        raise WorkflowError("invalid_transition",
                            f"Appointment #{appt.id} started at {_hhmm(appt.starts_at)}; it can no longer be assigned.")
    # The therapist's row lock serialises every assignment of this therapist, so
    # two operators cannot both book them into overlapping slots.
    therapist = User.objects.select_for_update().filter(pk=therapist_id).first()
    if therapist is None or therapist.role != User.Role.THERAPIST:
        raise WorkflowError("invalid", "No such therapist.", status_code=400)
    reason = _evaluate([appt], therapist_ids=[therapist.id])[appt.id][therapist.id]
    if reason:
        raise WorkflowError("therapist_unavailable", f"{therapist.display_name} {reason}.")
    appt.therapist = therapist
    appt.assigned_at = now
    appt.response_deadline = min(now + response_window(), appt.starts_at)
    _save(appt, now, "therapist", "assigned_at", "response_deadline", *_open_offer(appt, now))
    outbox.event(appt, Kind.ASSIGNED, actor=actor, from_status=Status.PENDING,
                 response_deadline=appt.response_deadline.isoformat())
    outbox.notify(therapist.id, "assigned", appt,
                  f"New appointment #{appt.id} at {_when(appt.starts_at)} ({appt.service.name}, "
                  f"{appt.location}), answer by {_hhmm(appt.response_deadline)}.")


def accept(*, actor: User, appointment_id: int) -> Appointment:
    def body(appt: Appointment, outbox: _Outbox) -> None:
        if not actor.is_therapist:
            raise WorkflowError("permission_denied", "Only the assigned therapist can accept.", status_code=403)
        _require_answerable(appt, "accept")
        appt.status = Status.CONFIRMED
        appt.responded_at = outbox.now
        _save(appt, outbox.now, "status", "responded_at")
        outbox.event(appt, Kind.ACCEPTED, actor=actor, from_status=Status.PENDING)

    return _run(appointment_id, actor, body, late_code="deadline_passed")


def reject(*, actor: User, appointment_id: int, reason: str) -> Appointment:
    reason = _clean_text(reason, field="rejection reason")

    def body(appt: Appointment, outbox: _Outbox) -> None:
        if not actor.is_therapist:
            raise WorkflowError("permission_denied", "Only the assigned therapist can reject.", status_code=403)
        _require_answerable(appt, "reject")
        appt.status = Status.REJECTED
        appt.responded_at = outbox.now
        _save(appt, outbox.now, "status", "responded_at")
        AppointmentRejection.objects.create(appointment=appt, therapist=actor, reason=reason,
                                            created_at=outbox.now)
        outbox.event(appt, Kind.REJECTED, actor=actor, from_status=Status.PENDING, reason=reason)
        outbox.notify_operators(
            "rejected", appt,
            f"{actor.display_name} rejected #{appt.id} ({_when(appt.starts_at)}, {appt.client.name}): {reason}",
        )

    return _run(appointment_id, actor, body, late_code="deadline_passed")


def review_rejection(*, actor: User, appointment_id: int, decision: str, note: str = "") -> Appointment:
    """accept: back to the queue unassigned (cancelled at once if nobody can take
    it); deny: the same therapist gets a fresh deadline and the operator's note."""
    if decision not in AppointmentRejection.Decision.values:
        raise WorkflowError("invalid", "The review decision must be 'accept' or 'deny'.", status_code=400)
    note = _clean_text(note, field="review note", required=False)

    def body(appt: Appointment, outbox: _Outbox) -> None:
        rejection = (AppointmentRejection.objects.select_for_update()
                     .filter(appointment=appt).order_by("-created_at", "-id").first())
        if appt.status != Status.REJECTED:
            if rejection is not None and rejection.review_decision:
                raise WorkflowError("already_reviewed",
                                    f"The rejection of #{appt.id} was already reviewed "
                                    f"({rejection.review_decision}) by {rejection.reviewed_by}.")
            _require(appt, Status.REJECTED, action="review a rejection of")
        now = outbox.now
        therapist = appt.therapist
        if decision == AppointmentRejection.Decision.DENY:
            if appt.starts_at <= now:
                raise WorkflowError("invalid_transition",
                                    f"Appointment #{appt.id} has already started; accept the rejection or cancel it.")
            if not therapist.is_active:
                raise WorkflowError("therapist_unavailable", f"{therapist.display_name} is disabled.")
        rejection.review_decision = decision
        rejection.review_note = note
        rejection.reviewed_by = actor
        rejection.reviewed_at = now
        rejection.save(update_fields=["review_decision", "review_note", "reviewed_by", "reviewed_at"])
        appt.latest_rejections = [rejection]
        appt.status = Status.PENDING
        if decision == AppointmentRejection.Decision.DENY:
            appt.assigned_at = now
            appt.response_deadline = min(now + response_window(), appt.starts_at)
            _save(appt, now, "status", "assigned_at", "response_deadline")
            outbox.event(appt, Kind.REJECTION_DENIED, actor=actor, from_status=Status.REJECTED, note=note,
                         response_deadline=appt.response_deadline.isoformat())
            outbox.notify(therapist.id, "rejection_denied", appt,
                          f"Your rejection of #{appt.id} ({_when(appt.starts_at)}) was denied"
                          + (f": {_sentence(note)}" if note else ".")
                          + f" Please answer by {_hhmm(appt.response_deadline)}.")
            # The same offer goes on (no new number, same receipts), pushed with its new answer-by time.
            _push_offer(appt, now, title=f"Your rejection of #{appt.id} was denied: answer by "
                        f"{timefmt.clock(appt.response_deadline)}")
            return
        appt.therapist = None
        appt.assigned_at = None
        appt.response_deadline = None
        _save(appt, now, "status", "therapist", "assigned_at", "response_deadline")
        outbox.event(appt, Kind.REJECTION_ACCEPTED, actor=actor, from_status=Status.REJECTED,
                     therapist_id=therapist.id, note=note)
        # Once the start has passed nobody can be assigned, so it cannot wait in the queue.
        if appt.starts_at <= now or not any(reason is None for reason in _evaluate([appt])[appt.id].values()):
            _cancel_unstaffable_locked([appt], outbox)

    return _run(appointment_id, actor, body)


def start(*, actor: User, appointment_id: int) -> Appointment:
    def body(appt: Appointment, outbox: _Outbox) -> None:
        _require(appt, Status.CONFIRMED, action="start")
        appt.status = Status.IN_PROGRESS
        appt.started_at = outbox.now
        _save(appt, outbox.now, "status", "started_at")
        outbox.event(appt, Kind.STARTED, actor=actor, from_status=Status.CONFIRMED)

    return _run(appointment_id, actor, body)


def complete(*, actor: User, appointment_id: int) -> Appointment:
    def body(appt: Appointment, outbox: _Outbox) -> None:
        _require(appt, Status.IN_PROGRESS, action="complete")
        appt.status = Status.COMPLETED
        appt.completed_at = outbox.now
        _save(appt, outbox.now, "status", "completed_at")
        outbox.event(appt, Kind.COMPLETED, actor=actor, from_status=Status.IN_PROGRESS)

    return _run(appointment_id, actor, body)


def cancel(*, actor: User, appointment_id: int, reason: str) -> Appointment:
    reason = _clean_text(reason, field="cancellation reason")

    def body(appt: Appointment, outbox: _Outbox) -> None:
        _require(appt, *Appointment.BUSY_STATUSES, action="cancel")
        from_status = appt.status
        appt.status = Status.CANCELLED
        appt.cancellation_reason = Reason.OPERATOR
        appt.cancellation_note = reason
        appt.cancelled_at = outbox.now
        _save(appt, outbox.now, "status", "cancellation_reason", "cancellation_note", "cancelled_at")
        outbox.event(appt, Kind.CANCELLED, actor=actor, from_status=from_status, reason=reason)
        if appt.therapist_id:
            outbox.notify(appt.therapist_id, "cancelled", appt,
                          f"Appointment #{appt.id} at {_when(appt.starts_at)} was cancelled: {reason}")

    return _run(appointment_id, actor, body)


# ---------------------------------------------------------------------------
# The batch rules: timeout and no-available-therapist. The sweep loops over
# these; a late write runs `_expire_locked` for its one appointment.
# ---------------------------------------------------------------------------


@dataclass
class SweepAction:
    appointment_id: int
    kind: str  # "timed_out" or "no_available_therapist"
    line: str
    therapist_disabled: bool = False


@dataclass
class BatchResult:
    claimed: int = 0
    actions: list[SweepAction] = field(default_factory=list)
    last_id: int = 0


def _attach_latest_rejections(appts: list[Appointment]) -> None:
    latest: dict[int, AppointmentRejection] = {}
    for rejection in AppointmentRejection.objects.filter(
        appointment_id__in=[a.id for a in appts],
    ).order_by("appointment_id", "-created_at", "-id"):
        latest.setdefault(rejection.appointment_id, rejection)
    for appt in appts:
        if not hasattr(appt, "latest_rejections"):
            appt.latest_rejections = [latest[appt.id]] if appt.id in latest else []


def _timeout_line(appt: Appointment, disabled: bool) -> str:
    name = appt.therapist.display_name
    line = f"#{appt.id} cancelled: no response from {name} by {_hhmm(appt.response_deadline)}"
    return line + (f"; {name} disabled" if disabled else f"; {name} was already disabled")


def _expire_locked(appts: list[Appointment], outbox: _Outbox) -> list[SweepAction]:
    """Time out these locked, overdue appointments: cancel them, disable their
    therapists (once each, in one UPDATE), notify the therapist and every
    operator. A fixed number of queries however many appointments."""
    if not appts:
        return []
    now = outbox.now
    Appointment.objects.filter(id__in=[a.id for a in appts]).update(
        status=Status.CANCELLED, cancellation_reason=Reason.RESPONSE_TIMEOUT,
        cancelled_at=now, auto_cancelled_at=now, updated_at=now,
    )
    first_missed: dict[int, Appointment] = {}
    for appt in sorted(appts, key=lambda a: (a.response_deadline, a.id)):
        first_missed.setdefault(appt.therapist_id, appt)
    newly_disabled = set(User.objects.select_for_update().filter(
        id__in=first_missed, is_active=True,
    ).values_list("id", flat=True))
    reasons = {
        tid: f"No response to appointment #{a.id} ({_when(a.starts_at)}) by {_hhmm(a.response_deadline)}"
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
        outbox.disconnect_user_ids.extend(reasons)
    _attach_latest_rejections(appts)
    actions = []
    for appt in appts:
        appt.status = Status.CANCELLED
        appt.cancellation_reason = Reason.RESPONSE_TIMEOUT
        appt.cancelled_at = appt.auto_cancelled_at = appt.updated_at = now
        disabled = first_missed[appt.therapist_id] is appt and appt.therapist_id in newly_disabled
        outbox.event(appt, Kind.TIMED_OUT, actor=None, from_status=Status.PENDING, therapist_disabled=disabled)
        line = _timeout_line(appt, disabled)
        outbox.notify(appt.therapist_id, "timed_out", appt,
                      f"You did not answer appointment #{appt.id} ({_when(appt.starts_at)}) by "
                      f"{_hhmm(appt.response_deadline)}: it was cancelled and your account is disabled. "
                      "Ask an operator to re-enable it.")
        outbox.notify_operators("timed_out", appt, line)
        actions.append(SweepAction(appt.id, "timed_out", line, disabled))
    return actions


def _unstaffable_line(appt: Appointment, now: datetime) -> str:
    why = "its start time has passed" if appt.starts_at <= now else "no therapist is available for it"
    return (f"#{appt.id} cancelled: {appt.service.name} for {appt.client.name} at {_when(appt.starts_at)}, "
            f"{why}")


def _cancel_unstaffable_locked(appts: list[Appointment], outbox: _Outbox) -> list[SweepAction]:
    if not appts:
        return []
    now = outbox.now
    Appointment.objects.filter(id__in=[a.id for a in appts]).update(
        status=Status.CANCELLED, cancellation_reason=Reason.NO_AVAILABLE_THERAPIST,
        cancelled_at=now, auto_cancelled_at=now, updated_at=now,
    )
    _attach_latest_rejections(appts)
    actions = []
    for appt in appts:
        appt.status = Status.CANCELLED
        appt.cancellation_reason = Reason.NO_AVAILABLE_THERAPIST
        appt.cancelled_at = appt.auto_cancelled_at = appt.updated_at = now
        line = _unstaffable_line(appt, now)
        outbox.event(appt, Kind.NO_AVAILABLE_THERAPIST, actor=None, from_status=Status.PENDING)
        outbox.notify_operators("no_available_therapist", appt, line)
        actions.append(SweepAction(appt.id, "no_available_therapist", line))
    return actions


def _overdue_q(now: datetime) -> Q:
    return Q(status=Status.PENDING, therapist__isnull=False, response_deadline__lte=now)


def expire_overdue(*, batch_size: int = 500, dry_run: bool = False, after_id: int = 0) -> BatchResult:
    """Claim up to `batch_size` overdue appointments nobody else holds
    (`skip_locked`, so sweeps on several hosts never share a row) and time them out."""
    with transaction.atomic():
        now = timezone.now()
        qs = Appointment.objects.filter(_overdue_q(now)).select_related("client", "service", "therapist")
        if dry_run:
            appts = list(qs.filter(id__gt=after_id).order_by("id")[:batch_size])
            # The real run disables a therapist on their earliest missed deadline
            # (deadline, then id) among everything due, whichever batch it is in.
            first_missed: dict[int, int] = {}
            for therapist_id, appt_id in (
                Appointment.objects.filter(_overdue_q(now), therapist_id__in={a.therapist_id for a in appts})
                .order_by("response_deadline", "id").values_list("therapist_id", "id")
            ):
                first_missed.setdefault(therapist_id, appt_id)
            lines = []
            for appt in appts:
                first = appt.therapist.is_active and first_missed[appt.therapist_id] == appt.id
                lines.append(SweepAction(appt.id, "timed_out", _timeout_line(appt, first), first))
            return BatchResult(len(appts), lines, appts[-1].id if appts else after_id)
        appts = list(qs.select_for_update(skip_locked=True, of=("self",)).order_by("response_deadline", "id")
                     [:batch_size])
        outbox = _Outbox(now)
        actions = _expire_locked(appts, outbox)
        outbox.flush()
    return BatchResult(len(appts), actions, max((a.id for a in appts), default=after_id))


def cancel_unstaffable(*, batch_size: int = 500, dry_run: bool = False, after_id: int = 0) -> BatchResult:
    """The no-available-therapist rule for the unassigned pending bookings that
    cannot wait any longer: their start has passed, or it is within the response
    window and nobody could take them. Walks by id (`after_id`) because the ones
    somebody can still take stay pending."""
    with transaction.atomic():
        now = timezone.now()
        qs = (Appointment.objects.filter(status=Status.PENDING, therapist__isnull=True,
                                         starts_at__lte=now + response_window(), id__gt=after_id)
              .select_related("client", "service").order_by("id"))
        if not dry_run:
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        appts = list(qs[:batch_size])
        future = [a for a in appts if a.starts_at > now]
        verdicts = _evaluate(future)
        doomed = [a for a in appts if a.starts_at <= now
                  or not any(reason is None for reason in verdicts[a.id].values())]
        last_id = appts[-1].id if appts else after_id
        if dry_run:
            return BatchResult(len(appts), [SweepAction(a.id, "no_available_therapist", _unstaffable_line(a, now))
                                            for a in doomed], last_id)
        outbox = _Outbox(now)
        actions = _cancel_unstaffable_locked(doomed, outbox)
        outbox.flush()
    return BatchResult(len(appts), actions, last_id)


@dataclass
class SweepCounts:
    timed_out: int = 0
    therapists_disabled: int = 0
    no_available_therapist: int = 0
    reminded: int = 0
    escalated: int = 0

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
            if action.kind == "timed_out":
                counts.timed_out += 1
                counts.therapists_disabled += action.therapist_disabled
            else:
                counts.no_available_therapist += 1
            if report:
                report(action)

    for rule in (expire_overdue, cancel_unstaffable):
        after_id = 0
        while True:
            result = rule(batch_size=batch_size, dry_run=dry_run, after_id=after_id)
            handle(result)
            after_id = result.last_id
            # A short batch means nothing more is due (or the rest is held by
            # another sweep, which will finish it).
            if result.claimed < batch_size:
                break
    # Then the offers nobody has seen: the reminder email and the operators' escalation.
    from .reach import reach_unseen  # here, not at the top: reach builds on this module

    counts.reminded, counts.escalated = reach_unseen(batch_size=batch_size, dry_run=dry_run, report=report)
    return counts


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
        outbox = _Outbox(now)
        outbox.notify(therapist.id, "enabled", None,
                      f"Your account was re-enabled by {actor.display_name}" + (f": {note}" if note else "."))
        outbox.flush()
    return therapist


def add_availability(*, actor: User, therapist: User, starts_at: datetime, ends_at: datetime) -> Availability:
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=therapist.pk).first()
        clash = Availability.objects.filter(therapist=therapist, starts_at__lt=ends_at, ends_at__gt=starts_at).first()
        if clash:
            raise WorkflowError("invalid", "Invalid input.", status_code=400, errors={
                "starts_at": [f"Overlaps the slot {_when(clash.starts_at)}–{_hhmm(clash.ends_at)}."],
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

OFFER_FIELDS = ("offer_number", "offer_sent_at", "offer_delivered_at", "offer_seen_at", "offer_reminded_at",
                "offer_escalated_at")
RECEIPT_FIELDS = {Kind.DELIVERED: "offer_delivered_at", Kind.SEEN: "offer_seen_at"}


def _open_offer(appt: Appointment, now: datetime) -> tuple[str, ...]:
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
    return OFFER_FIELDS


def _push_offer(appt: Appointment, now: datetime, *, title: str = "") -> None:
    """The push of the current offer: who, what, when and by when to answer; a tap
    opens the appointment on the therapist page."""
    deadline = appt.response_deadline
    first_name = (appt.client.name.split() or ["A client"])[0]
    push.send_on_commit(appt.therapist_id, {
        "title": title or f"New appointment #{appt.id}: answer by {timefmt.clock(deadline)}",
        "body": f"{first_name} · {appt.service.name} · {timefmt.when(appt.starts_at, now=now)}",
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

    def body(appt: Appointment, outbox: _Outbox) -> None:
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
