"""Who could take this appointment right now?

One engine answers that question for `assign`, the ranked list an operator picks
from, the sweep's no-available-therapist rule and every later rule that offers
work (re-offer, reassign, reschedule). It is a read: it never locks or writes.
Callers that act on the answer hold the therapist's row lock (see workflow).

Home visits need travel: between two of a therapist's open appointments at
different places there must be `TRAVEL_BUFFER_MINUTES`; at the same place
(compared without case and extra spaces) back-to-back is fine, and so is a gap
of exactly the buffer. The refusal names the clash, so an operator knows which
booking is in the way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from accounts.models import User

from .models import Appointment, AppointmentRejection, Availability, Service
from .text import hhmm, when

Status = Appointment.Status

# therapist id -> None when assign would accept them, else why not.
Verdicts = dict[int, str | None]


@dataclass
class _Facts:
    """Everything the verdicts need, loaded with a fixed number of queries."""

    users: dict[int, User]
    qualified: dict[int, set[int]]
    slots: dict[int, list[tuple[datetime, datetime]]]
    # therapist -> (appointment id, start, end, place) of their open appointments.
    busy: dict[int, list[tuple[int, datetime, datetime, str]]]
    excluded: set[tuple[int, int]]
    buffer: timedelta


def travel_buffer() -> timedelta:
    return timedelta(minutes=settings.TRAVEL_BUFFER_MINUTES)


def place_key(location: str) -> str:
    """Where an appointment is, as the travel rule compares it: without case,
    surrounding spaces or runs of spaces."""
    return " ".join((location or "").split()).casefold()


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
    busy: dict[int, list[tuple[int, datetime, datetime, str]]] = defaultdict(list)
    excluded: set[tuple[int, int]] = set()
    buffer = travel_buffer()
    if users:
        lo = min(a.starts_at for a in appointments)
        hi = max(a.ends_at for a in appointments)
        for tid, start, end in Availability.objects.filter(
            therapist_id__in=users, starts_at__lte=hi, ends_at__gte=lo,
        ).values_list("therapist_id", "starts_at", "ends_at"):
            slots[tid].append((start, end))
        # Wider by the travel buffer: a booking that ends just before may still clash.
        for appt_id, tid, start, end, location in Appointment.objects.filter(
            therapist_id__in=users, status__in=Appointment.BUSY_STATUSES,
            starts_at__lt=hi + buffer, ends_at__gt=lo - buffer,
        ).values_list("id", "therapist_id", "starts_at", "ends_at", "location"):
            busy[tid].append((appt_id, start, end, place_key(location)))
        excluded = set(AppointmentRejection.objects.filter(
            appointment_id__in=[a.id for a in appointments if a.id],
            review_decision=AppointmentRejection.Decision.ACCEPT,
        ).values_list("appointment_id", "therapist_id"))
    return _Facts(users, qualified, slots, busy, excluded, buffer)


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
        return f"has no availability covering {when(appt.starts_at)}–{hhmm(appt.ends_at)}"
    busy = facts.busy.get(user.id, ())
    for other_id, start, end, _place in busy:
        if other_id != appt.id and start < appt.ends_at and appt.starts_at < end:
            return f"already has appointment #{other_id} at {hhmm(start)}–{hhmm(end)}"
    if facts.buffer:
        return _travel_clash(appt, busy, facts.buffer)
    return None


def _travel_clash(appt: Appointment, busy, buffer: timedelta) -> str | None:
    here = place_key(appt.location)
    minutes = int(buffer.total_seconds() // 60)
    for other_id, start, end, place in busy:
        if other_id == appt.id or place == here:
            continue
        if end <= appt.starts_at < end + buffer:
            return f"needs {minutes} min to travel after #{other_id}, which ends at {hhmm(end)}"
        if appt.ends_at <= start < appt.ends_at + buffer:
            return f"needs {minutes} min to travel before #{other_id}, which starts at {hhmm(start)}"
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
    facts = _load([appointment], None)
    free = [tid for tid in facts.qualified.get(appointment.service_id, ())
            if _verdict(appointment, facts.users.get(tid), facts) is None]
    workload = _Workload.load([appointment], free)
    return [RankedTherapist(facts.users[tid], *workload.standing(appointment, tid))
            for tid in workload.order(appointment, free, facts.users)]


def rank(appointment: Appointment, free_ids: list[int]) -> list[RankedTherapist]:
    if not free_ids:
        return []
    users = {u.id: u for u in User.objects.filter(id__in=free_ids)}
    workload = _Workload.load([appointment], list(users))
    return [RankedTherapist(users[tid], *workload.standing(appointment, tid))
            for tid in workload.order(appointment, list(users), users)]


_EPOCH = datetime.min.replace(tzinfo=timezone.get_fixed_timezone(0))


def _local_day(value: datetime) -> tuple[datetime, datetime]:
    start = timezone.localtime(value).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


class _Workload:
    """What the ranking reads, for a whole batch at once (two queries): each
    candidate's appointments (any status but cancelled) over the local days the
    batch touches, and their last end before those days."""

    def __init__(self, rows: dict[int, list[tuple[datetime, datetime]]], before: dict[int, datetime]):
        self.rows = rows
        self.before = before

    @classmethod
    def load(cls, appointments: list[Appointment], therapist_ids) -> _Workload:
        rows: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        if not therapist_ids or not appointments:
            return cls(rows, {})
        lo = min(_local_day(a.starts_at)[0] for a in appointments)
        hi = max(_local_day(a.starts_at)[1] for a in appointments)
        counted = Appointment.objects.filter(therapist_id__in=therapist_ids).exclude(status=Status.CANCELLED)
        for tid, start, end in counted.filter(starts_at__lt=hi, ends_at__gte=lo).values_list(
                "therapist_id", "starts_at", "ends_at"):
            rows[tid].append((start, end))
        before = dict(counted.filter(ends_at__lt=lo).values("therapist_id").annotate(last=Max("ends_at"))
                      .values_list("therapist_id", "last"))
        return cls(rows, before)

    def standing(self, appt: Appointment, tid: int) -> tuple[int, datetime | None]:
        """(appointments that local day, end of their last one before this start)."""
        day_start, day_end = _local_day(appt.starts_at)
        rows = self.rows.get(tid, ())
        that_day = sum(1 for start, _ in rows if day_start <= start < day_end)
        last = max((end for _, end in rows if end <= appt.starts_at), default=None)
        return that_day, last or self.before.get(tid)

    def order(self, appt: Appointment, therapist_ids, users: dict[int, User]) -> list[int]:
        return sorted(therapist_ids, key=lambda tid: self._key(appt, tid, users))

    def best(self, appt: Appointment, therapist_ids, users: dict[int, User]) -> int | None:
        return min(therapist_ids, key=lambda tid: self._key(appt, tid, users), default=None)

    def _key(self, appt: Appointment, tid: int, users: dict[int, User]):
        that_day, last = self.standing(appt, tid)
        return that_day, last or _EPOCH, users[tid].display_name, tid

    def add(self, tid: int, appt: Appointment) -> None:
        self.rows.setdefault(tid, []).append((appt.starts_at, appt.ends_at))

    def remove(self, tid: int, appt: Appointment) -> None:
        self.rows[tid].remove((appt.starts_at, appt.ends_at))


class Planner:
    """Hands a batch of unassigned appointments out: each to the first therapist
    of its ranked list (the order `available_therapists` gives) who is still free
    once the earlier ones of the batch have taken theirs.

    Everything is loaded once for the whole batch (a fixed number of queries);
    `take` records an offer in memory, so no therapist gets two offers that
    overlap or leave too little time to travel. A read, like the rest of this
    module: the caller locks the therapists it picked and then calls `refresh`
    with them, so the checks run on what is committed once the lock is held.
    """

    def __init__(self, appointments: list[Appointment]):
        self.appointments = appointments
        self.facts = _load(appointments, None) if appointments else _Facts({}, {}, {}, {}, set(), travel_buffer())
        self.workload = _Workload.load(appointments, list(self.facts.users))
        self.taken: dict[int, list[tuple[int, datetime, datetime, str]]] = defaultdict(list)

    def _free(self, appt: Appointment, skip: set[int]) -> list[int]:
        users = self.facts.users
        return [tid for tid in self.facts.qualified.get(appt.service_id, ())
                if tid not in skip and _verdict(appt, users.get(tid), self.facts) is None]

    def best(self, appt: Appointment, skip: set[int] = frozenset()) -> int | None:
        return self.workload.best(appt, self._free(appt, skip), self.facts.users)

    def anyone(self, appt: Appointment, skip: set[int] = frozenset()) -> bool:
        return bool(self._free(appt, skip))

    def why_not(self, appt: Appointment, tid: int) -> str | None:
        return _verdict(appt, self.facts.users.get(tid), self.facts)

    def take(self, appt: Appointment, tid: int) -> None:
        entry = (appt.id, appt.starts_at, appt.ends_at, place_key(appt.location))
        self.taken[tid].append(entry)
        self.facts.busy.setdefault(tid, []).append(entry)
        self.workload.add(tid, appt)

    def give_back(self, appt: Appointment, tid: int) -> None:
        entry = (appt.id, appt.starts_at, appt.ends_at, place_key(appt.location))
        self.taken[tid].remove(entry)
        self.facts.busy[tid].remove(entry)
        self.workload.remove(tid, appt)

    def refresh(self, therapist_ids) -> None:
        """Reload these therapists (account, qualifications, slots, bookings) as
        committed now, keeping the offers this batch has already given them."""
        ids = set(therapist_ids)
        if not ids:
            return
        fresh = _load(self.appointments, ids)
        facts = self.facts
        for tid in ids:
            if tid in fresh.users:
                facts.users[tid] = fresh.users[tid]
            else:
                facts.users.pop(tid, None)
            facts.slots[tid] = fresh.slots.get(tid, [])
            facts.busy[tid] = fresh.busy.get(tid, []) + self.taken.get(tid, [])
        for service_id in {a.service_id for a in self.appointments}:
            now_qualified = fresh.qualified.get(service_id, set())
            facts.qualified.setdefault(service_id, set())
            facts.qualified[service_id] -= ids - now_qualified
            facts.qualified[service_id] |= now_qualified
        facts.excluded |= fresh.excluded
