"""Who could take this appointment right now?

One engine answers that question for `assign`, the ranked list an operator picks
from, the sweep's no-available-therapist rule and every later rule that offers
work (re-offer, reassign, reschedule). It is a read: it never locks or writes.
Callers that act on the answer hold the therapist's row lock (see workflow).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from accounts.models import User

from .models import Appointment, AppointmentRejection, Availability, Service
from .text import span

Status = Appointment.Status

# therapist id -> None when assign would accept them, else why not.
Verdicts = dict[int, str | None]


@dataclass
class _Facts:
    """Everything the verdicts need, loaded with a fixed number of queries."""

    users: dict[int, User]
    qualified: dict[int, set[int]]
    slots: dict[int, list[tuple[datetime, datetime]]]
    busy: dict[int, list[tuple[int, datetime, datetime]]]
    excluded: set[tuple[int, int]]


def evaluate(appointments: list[Appointment], *, therapist_ids: Iterable[int] | None = None,
             ) -> dict[int, Verdicts]:
    """For each appointment, each candidate therapist -> None if `assign` would
    accept them right now, else the reason it would not. Candidates are the given
    therapists, or everyone qualified for the appointment's service. A fixed
    number of queries for the whole list."""
    if not appointments:
        return {}
    if therapist_ids is not None:
        therapist_ids = set(therapist_ids)
    facts = _load(appointments, therapist_ids)
    if not facts.users:
        return {a.id: {} for a in appointments}
    result: dict[int, Verdicts] = {}
    for appt in appointments:
        ids = therapist_ids if therapist_ids is not None else facts.qualified.get(appt.service_id, set())
        result[appt.id] = {tid: _verdict(appt, facts.users.get(tid), facts) for tid in ids}
    return result


def verdict(appointment: Appointment, therapist_id: int) -> str | None:
    """Why `therapist_id` cannot take `appointment` now, or None if they can."""
    return evaluate([appointment], therapist_ids=[therapist_id])[appointment.id][therapist_id]


def anyone_available(verdicts: Verdicts) -> bool:
    return any(reason is None for reason in verdicts.values())


def _load(appointments: list[Appointment], therapist_ids: set[int] | None) -> _Facts:
    service_ids = {a.service_id for a in appointments}
    qualified: dict[int, set[int]] = defaultdict(set)
    through = Service.therapists.through.objects.filter(service_id__in=service_ids)
    if therapist_ids is not None:
        through = through.filter(user_id__in=therapist_ids)
    for service_id, user_id in through.values_list("service_id", "user_id"):
        qualified[service_id].add(user_id)
    candidate_ids = therapist_ids if therapist_ids is not None else set().union(*qualified.values())
    users = {u.id: u for u in User.objects.filter(id__in=candidate_ids)}
    slots: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    busy: dict[int, list[tuple[int, datetime, datetime]]] = defaultdict(list)
    excluded: set[tuple[int, int]] = set()
    if users:
        lo = min(a.starts_at for a in appointments)
        hi = max(a.ends_at for a in appointments)
        for tid, start, end in Availability.objects.filter(
            therapist_id__in=users, starts_at__lte=hi, ends_at__gte=lo,
        ).values_list("therapist_id", "starts_at", "ends_at"):
            slots[tid].append((start, end))
        for appt_id, tid, start, end in Appointment.objects.filter(
            therapist_id__in=users, status__in=Appointment.BUSY_STATUSES, starts_at__lt=hi, ends_at__gt=lo,
        ).values_list("id", "therapist_id", "starts_at", "ends_at"):
            busy[tid].append((appt_id, start, end))
        excluded = set(AppointmentRejection.objects.filter(
            appointment_id__in=[a.id for a in appointments if a.id],
            review_decision=AppointmentRejection.Decision.ACCEPT,
        ).values_list("appointment_id", "therapist_id"))
    return _Facts(users, qualified, slots, busy, excluded)


def _verdict(appt: Appointment, user: User | None, facts: _Facts) -> str | None:
    if user is None or user.role != User.Role.THERAPIST:
        return "is not a therapist"
    if not user.is_active:
        return "is disabled"
    if user.id not in facts.qualified.get(appt.service_id, ()):
        return f"is not qualified for {appt.service.name}"
    if (appt.id, user.id) in facts.excluded:
        return "had their rejection of this appointment accepted"
    if not any(start <= appt.starts_at and appt.ends_at <= end for start, end in facts.slots.get(user.id, ())):
        return f"has no availability covering {span(appt.starts_at, appt.ends_at)}"
    for other_id, start, end in facts.busy.get(user.id, ()):
        # Back-to-back is fine: only a real overlap blocks.
        if other_id != appt.id and start < appt.ends_at and appt.starts_at < end:
            return f"already has appointment #{other_id} at {span(start, end)}"
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
    verdicts = evaluate([appointment]).get(appointment.id, {})
    return rank(appointment, [tid for tid, reason in verdicts.items() if reason is None])


def rank(appointment: Appointment, free_ids: list[int]) -> list[RankedTherapist]:
    if not free_ids:
        return []
    day_start = timezone.localtime(appointment.starts_at).replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = day_start + timedelta(days=1)
    users = User.objects.filter(id__in=free_ids).annotate(
        day_count=Count("appointments", filter=Q(
            appointments__starts_at__gte=day_start, appointments__starts_at__lt=day_end,
        ) & ~Q(appointments__status=Status.CANCELLED)),
        last_end=Max("appointments__ends_at", filter=Q(
            appointments__ends_at__lte=appointment.starts_at,
        ) & ~Q(appointments__status=Status.CANCELLED)),
    )
    ranked = [RankedTherapist(u, u.day_count, u.last_end) for u in users]
    epoch = datetime.min.replace(tzinfo=timezone.get_current_timezone())
    ranked.sort(key=lambda r: (r.appointments_that_day, r.last_appointment_end or epoch, r.therapist.display_name))
    return ranked


def reassign_candidates(appointment: Appointment) -> list[RankedTherapist]:
    """The therapists `reassign` would hand an assigned `pending` or `confirmed`
    appointment to right now, best first: everyone the engine clears except the
    therapist who holds it."""
    now = timezone.now()
    if (appointment.status not in (Status.PENDING, Status.CONFIRMED) or appointment.therapist_id is None
            or appointment.starts_at <= now or appointment.is_overdue(now)):
        return []  # reassign would refuse anyone
    verdicts = evaluate([appointment]).get(appointment.id, {})
    return rank(appointment, [tid for tid, reason in verdicts.items()
                              if reason is None and tid != appointment.therapist_id])


def candidates(appointment: Appointment) -> list[RankedTherapist]:
    """Who an operator can offer this appointment to: `assign` candidates while it
    is unassigned, `reassign` candidates once someone holds it."""
    if appointment.therapist_id is None:
        return available_therapists(appointment)
    return reassign_candidates(appointment)
