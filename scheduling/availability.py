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

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from accounts import formatting
from accounts.models import User
from accounts.prepared import Prepared

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


def lock_and_judge(appointment: Appointment, therapist_id: int) -> tuple[User | None, str | None]:
    """Lock the therapist's row and say why they cannot take `appointment` as it
    stands in memory (its new time or place included), or None if they can.
    (None, None) when there is no such user.

    The lock serialises every assignment of this therapist, so two operators
    cannot both book them into overlapping slots: their bookings are read after
    it. Whether they are qualified, have a slot covering it and had a rejection
    of it accepted is read with the lock, in the same statement."""
    therapist = next(iter(_LOCK_JUDGED.fetch(
        therapist_id=int(therapist_id), service_id=appointment.service_id, appointment_id=appointment.id or 0,
        starts=appointment.starts_at, ends=appointment.ends_at)), None)
    if therapist is None:
        return None, None
    return therapist, _verdict(appointment, therapist, _load_one(appointment, therapist))


# For one appointment and one therapist (every assign, reassign and reschedule):
# the facts `_load` reads, from two statements whose SQL is built once.
def _judged(therapist_id, service_id, appointment_id, starts, ends):
    qualified = Service.therapists.through.objects.filter(user_id=OuterRef("pk"), service_id=service_id)
    covering = Availability.objects.filter(therapist=OuterRef("pk"), starts_at__lte=starts, ends_at__gte=ends)
    refused = AppointmentRejection.objects.filter(
        appointment_id=appointment_id, therapist=OuterRef("pk"), review_decision=AppointmentRejection.Decision.ACCEPT)
    return (User.objects.select_for_update().filter(pk=therapist_id)
            .annotate(is_qualified=Exists(qualified), has_slot=Exists(covering), was_refused=Exists(refused))[:1])


_LOCK_JUDGED = Prepared(_judged, therapist_id=-(2**62) + 21, service_id=-(2**62) + 22,
                        appointment_id=-(2**62) + 23, starts=datetime(1901, 1, 2, tzinfo=UTC),
                        ends=datetime(1901, 1, 3, tzinfo=UTC))
_BUSY = Prepared(lambda therapist_id, lo, hi: Appointment.objects.filter(
    therapist_id=therapist_id, status__in=Appointment.BUSY_STATUSES, starts_at__lt=hi, ends_at__gt=lo,
).values_list("id", "starts_at", "ends_at", "location"),
    therapist_id=-(2**62) + 24, lo=datetime(1901, 1, 4, tzinfo=UTC), hi=datetime(1901, 1, 5, tzinfo=UTC))


def _load_one(appt: Appointment, therapist: User) -> _Facts:
    """`_load`'s facts from a therapist read by `_LOCK_JUDGED` for `appt`."""
    tid = therapist.id
    qualified = {appt.service_id: {tid}} if therapist.is_qualified else {}
    # The slot that covers it, as far as the availability rule asks.
    slots = {tid: [(appt.starts_at, appt.ends_at)]} if therapist.has_slot else {}
    excluded = {(appt.id, tid)} if therapist.was_refused else set()
    buffer = travel_buffer()
    busy = {tid: [(appt_id, start, end, place_key(location)) for appt_id, start, end, location in _BUSY.rows(
        therapist_id=tid, lo=appt.starts_at - buffer, hi=appt.ends_at + buffer)]}
    return _Facts({tid: therapist}, qualified, slots, busy, excluded, buffer)


def staffable(appointments: list[Appointment]) -> set[int]:
    """The ids of `appointments` somebody could take right now: the engine's
    verdicts, stopping at the first therapist it clears and wording no refusal.
    One appointment (a review) reads the therapists the standing rules leave a
    page at a time and stops at the first page with someone free; many (a sweep
    batch) read everything at once, a fixed number of queries."""
    if not appointments:
        return set()
    if len(appointments) == 1:
        appt = appointments[0]
        return {appt.id} if _someone_free(appt) else set()
    facts = _load(appointments, None, free_only=True)
    return {appt.id for appt in appointments
            if any(_free(appt, facts.users.get(tid), facts) for tid in facts.qualified.get(appt.service_id, ()))}


# One appointment (a review): the therapists the standing rules leave (a
# therapist, active, qualified, not refused for it, with a slot covering it), a
# page at a time in id order, from one statement whose SQL is built once; then
# their bookings around it, for the travel and overlap rules.
_LOOK = 25


def _standing(service_id, appointment_id, starts, ends, after):
    refused = AppointmentRejection.objects.filter(
        appointment_id=appointment_id, therapist=OuterRef("pk"), review_decision=AppointmentRejection.Decision.ACCEPT)
    covering = Availability.objects.filter(therapist=OuterRef("pk"), starts_at__lte=starts, ends_at__gte=ends)
    return (User.objects.filter(pk__gt=after, role=User.Role.THERAPIST, is_active=True, qualified_services=service_id)
            .filter(Exists(covering)).exclude(Exists(refused)).order_by("pk").values_list("pk")[:_LOOK])


_STANDING = Prepared(_standing, service_id=-(2**62) + 26, appointment_id=-(2**62) + 27, after=-(2**62) + 28,
                     starts=datetime(1901, 1, 6, tzinfo=UTC), ends=datetime(1901, 1, 7, tzinfo=UTC))


def _someone_free(appt: Appointment) -> bool:
    """`staffable` for one appointment, stopping at the first page with someone free."""
    buffer = travel_buffer()
    after = 0
    while True:
        ids = [tid for (tid,) in _STANDING.rows(service_id=appt.service_id, appointment_id=appt.id or 0,
                                                 starts=appt.starts_at, ends=appt.ends_at, after=after)]
        if not ids:
            return False
        busy = _page_bookings(ids, appt.starts_at, appt.ends_at, buffer)
        if any(_clash(appt, busy[tid], buffer) is None for tid in ids):
            return True
        if len(ids) < _LOOK:
            return False
        after = ids[-1]


def _open_bookings(therapist_ids, lo: datetime, hi: datetime):
    """The therapists' open bookings that overlap lo..hi."""
    return Appointment.objects.filter(
        therapist_id__in=therapist_ids, status__in=Appointment.BUSY_STATUSES, starts_at__lt=hi, ends_at__gt=lo,
    ).values_list("id", "therapist_id", "starts_at", "ends_at", "location")


def _bookings(therapist_ids, lo: datetime, hi: datetime, buffer: timedelta,
              ) -> dict[int, list[tuple[int, datetime, datetime, str]]]:
    """Each therapist's open bookings around lo..hi, as (id, start, end, place).
    Wider by the travel buffer: a booking that ends just before may still clash."""
    return _by_therapist(_open_bookings(therapist_ids, lo - buffer, hi + buffer))


def _by_therapist(rows) -> dict[int, list[tuple[int, datetime, datetime, str]]]:
    busy: dict[int, list[tuple[int, datetime, datetime, str]]] = defaultdict(list)
    for appt_id, tid, start, end, location in rows:
        busy[tid].append((appt_id, start, end, place_key(location)))
    return busy


# A page of `_standing` (at most `_LOOK` therapists) has the same query shape
# every time once padded with 0, nobody's id: its SQL is built once. Built by
# the ORM per call, the 25 ids' IN list was a sixth of a review's Python time.
_PAGE = [f"therapist_{i}" for i in range(_LOOK)]
_PAGE_BOOKINGS = Prepared(
    lambda lo, hi, **ids: _open_bookings(list(ids.values()), lo, hi),
    lo=datetime(1901, 1, 8, tzinfo=UTC), hi=datetime(1901, 1, 9, tzinfo=UTC),
    **{name: -(2**62) + 100 + i for i, name in enumerate(_PAGE)})


def _page_bookings(therapist_ids: list[int], lo: datetime, hi: datetime, buffer: timedelta,
                   ) -> dict[int, list[tuple[int, datetime, datetime, str]]]:
    """`_bookings` for one page of `_standing`."""
    padded = dict(zip(_PAGE, [*therapist_ids, *[0] * (_LOOK - len(therapist_ids))], strict=True))
    return _by_therapist(_PAGE_BOOKINGS.rows(lo=lo - buffer, hi=hi + buffer, **padded))


def _load(appointments: list[Appointment], therapist_ids: set[int] | None, *,
          known: dict[int, User] | None = None, free_only: bool = False) -> _Facts:
    """`known`: users the caller has just read (under their row lock), not read again.
    `free_only`: facts only for the therapists with a slot covering one of the
    appointments, for callers that ask who is free: everyone else is refused by
    the availability rule whatever else is loaded, so their users and bookings
    are not read (the verdicts of those loaded do not change)."""
    service_ids = {a.service_id for a in appointments}
    qualified: dict[int, set[int]] = defaultdict(set)
    through = Service.therapists.through.objects.filter(service_id__in=service_ids)
    if therapist_ids is not None:
        through = through.filter(user_id__in=therapist_ids)
    for service_id, user_id in through.values_list("service_id", "user_id"):
        qualified[service_id].add(user_id)
    candidate_ids = therapist_ids if therapist_ids is not None else set().union(*qualified.values())
    slots: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    busy: dict[int, list[tuple[int, datetime, datetime, str]]] = defaultdict(list)
    excluded: set[tuple[int, int]] = set()
    buffer = travel_buffer()
    if not candidate_ids:
        return _Facts({}, qualified, slots, busy, excluded, buffer)
    lo = min(a.starts_at for a in appointments)
    hi = max(a.ends_at for a in appointments)
    for tid, start, end in Availability.objects.filter(
        therapist_id__in=candidate_ids, starts_at__lte=hi, ends_at__gte=lo,
    ).values_list("therapist_id", "starts_at", "ends_at"):
        slots[tid].append((start, end))
    if free_only:
        candidate_ids = {tid for tid, spans in slots.items()
                         if any(start <= a.starts_at and a.ends_at <= end
                                for a in appointments for start, end in spans)}
    known = known or {}
    users = {tid: known[tid] for tid in candidate_ids if tid in known}
    missing = set(candidate_ids) - users.keys()
    if missing:
        users.update((u.id, u) for u in User.objects.filter(id__in=missing))
    if users:
        busy = _bookings(users, lo, hi, buffer)
        # Rows read by the workflow's lock know whether they were ever rejected.
        rejected = [a.id for a in appointments if a.id and getattr(a, "rejected_before", True)]
        if rejected:
            excluded = set(AppointmentRejection.objects.filter(
                appointment_id__in=rejected, review_decision=AppointmentRejection.Decision.ACCEPT,
            ).values_list("appointment_id", "therapist_id"))
    return _Facts(users, qualified, slots, busy, excluded, buffer)


def _verdict(appt: Appointment, user: User | None, facts: _Facts) -> str | None:
    refusal = _standing_refusal(appt, user, facts)
    if refusal:
        return _standing_reason(refusal, appt)
    clash = _clash(appt, facts.busy.get(user.id, ()), facts.buffer)
    return _clash_reason(clash, facts.buffer) if clash else None


def _free(appt: Appointment, user: User | None, facts: _Facts) -> bool:
    """`_verdict(...) is None`, without wording a refusal."""
    return (_standing_refusal(appt, user, facts) is None
            and _clash(appt, facts.busy.get(user.id, ()), facts.buffer) is None)


def _standing_refusal(appt: Appointment, user: User | None, facts: _Facts) -> str | None:
    """Everything but the other bookings: account, qualification, an accepted
    rejection, availability. The rule that refuses (see `_standing_reason`), or None."""
    if user is None or user.role != User.Role.THERAPIST:
        return "not_therapist"
    if not user.is_active:
        return "disabled"
    if user.id not in facts.qualified.get(appt.service_id, ()):
        return "unqualified"
    if (appt.id, user.id) in facts.excluded:
        return "rejection_accepted"
    if not any(start <= appt.starts_at and appt.ends_at <= end for start, end in facts.slots.get(user.id, ())):
        return "no_availability"
    return None


def _standing_reason(refusal: str, appt: Appointment) -> str:
    if refusal == "not_therapist":
        return "is not a therapist"
    if refusal == "disabled":
        return "is disabled"
    if refusal == "unqualified":
        return f"is not qualified for {appt.service.name}"
    if refusal == "rejection_accepted":
        return "had their rejection of this appointment accepted"
    return f"has no availability covering {span(appt.starts_at, appt.ends_at)}"


def _clash(appt: Appointment, busy, buffer: timedelta, here: str | None = None) -> tuple | None:
    """The booking in the way, as (how, its id, its start, its end): "overlap", or
    at another place too little time to travel "after" it or "before" it. Only
    a refusal is worded (`_clash_reason`): the sweep asks this thousands of times."""
    appt_id, starts_at, ends_at = appt.id, appt.starts_at, appt.ends_at
    for other_id, start, end, _place in busy:
        if other_id != appt_id and start < ends_at and starts_at < end:
            return "overlap", other_id, start, end
    if not buffer:
        return None
    if here is None:
        here = place_key(appt.location)
    for other_id, start, end, place in busy:
        if other_id == appt_id or place == here:
            continue
        if end <= starts_at < end + buffer:
            return "after", other_id, start, end
        if ends_at <= start < ends_at + buffer:
            return "before", other_id, start, end
    return None


def _clash_reason(clash: tuple, buffer: timedelta) -> str:
    how, other_id, start, end = clash
    if how == "overlap":
        return f"already has appointment #{other_id} at {span(start, end)}"
    if how == "after":
        return f"needs {_minutes(buffer)} min to travel after #{other_id}, which ends at {formatting.when(end)}"
    return f"needs {_minutes(buffer)} min to travel before #{other_id}, which starts at {formatting.when(start)}"


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


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
    facts = _load([appointment], None, free_only=True)
    free = [tid for tid in facts.qualified.get(appointment.service_id, ())
            if _verdict(appointment, facts.users.get(tid), facts) is None]
    workload = _Workload.load([appointment], free, facts.users)
    return [RankedTherapist(facts.users[tid], *workload.standing(appointment, tid))
            for tid in workload.order(appointment, free)]


def rank(appointment: Appointment, free_ids: list[int]) -> list[RankedTherapist]:
    if not free_ids:
        return []
    users = {u.id: u for u in User.objects.filter(id__in=free_ids)}
    workload = _Workload.load([appointment], list(users), users)
    return [RankedTherapist(users[tid], *workload.standing(appointment, tid))
            for tid in workload.order(appointment, list(users))]


_EPOCH = datetime.min.replace(tzinfo=timezone.get_fixed_timezone(0))


def _local_date(value: datetime, tz=None) -> date:
    return value.astimezone(tz or timezone.get_current_timezone()).date()


class _Workload:
    """What the ranking reads, for a whole batch at once (two queries): each
    candidate's appointments (any status but cancelled) over the local days the
    batch touches — counted per day, their ends sorted — and their last end
    before those days."""

    def __init__(self, users: dict[int, User]):
        self.tz = timezone.get_current_timezone()  # looked up once: it is a context-local read
        self.names = {tid: user.display_name for tid, user in users.items()}
        self.per_day: dict[tuple[int, date], int] = defaultdict(int)
        self.ends: dict[int, list[datetime]] = defaultdict(list)
        self.before: dict[int, datetime] = {}

    @classmethod
    def load(cls, appointments: list[Appointment], therapist_ids, users: dict[int, User]) -> _Workload:
        workload = cls(users)
        if not therapist_ids or not appointments:
            return workload
        tz = workload.tz
        days = {_local_date(a.starts_at, tz) for a in appointments}
        lo = datetime.combine(min(days), time.min, tzinfo=tz)
        hi = datetime.combine(max(days) + timedelta(days=1), time.min, tzinfo=tz)
        counted = Appointment.objects.filter(therapist_id__in=therapist_ids).exclude(status=Status.CANCELLED)
        for tid, start, end in counted.filter(starts_at__lt=hi, ends_at__gte=lo).values_list(
                "therapist_id", "starts_at", "ends_at"):
            workload.add(tid, start, end)
        workload.before = dict(counted.filter(ends_at__lt=lo).values("therapist_id").annotate(last=Max("ends_at"))
                               .values_list("therapist_id", "last"))
        return workload

    def add(self, tid: int, start: datetime, end: datetime) -> None:
        self.per_day[tid, _local_date(start, self.tz)] += 1
        insort(self.ends[tid], end)

    def remove(self, tid: int, start: datetime, end: datetime) -> None:
        self.per_day[tid, _local_date(start, self.tz)] -= 1
        self.ends[tid].remove(end)

    def standing(self, appt: Appointment, tid: int) -> tuple[int, datetime | None]:
        """(appointments that local day, end of their last one before this start)."""
        ends = self.ends.get(tid)
        i = bisect_right(ends, appt.starts_at) if ends else 0
        return (self.per_day.get((tid, _local_date(appt.starts_at, self.tz)), 0),
                ends[i - 1] if i else self.before.get(tid))

    def key(self, starts_at: datetime, day: date, tid: int):
        ends = self.ends.get(tid)
        i = bisect_right(ends, starts_at) if ends else 0
        last = ends[i - 1] if i else self.before.get(tid)
        return self.per_day.get((tid, day), 0), last or _EPOCH, self.names[tid], tid

    def order(self, appt: Appointment, therapist_ids) -> list[int]:
        day = _local_date(appt.starts_at, self.tz)
        return sorted(therapist_ids, key=lambda tid: self.key(appt.starts_at, day, tid))


class Planner:
    """Hands a batch of unassigned appointments out: each to the first therapist
    of its ranked list (the order `available_therapists` gives) who is still free
    once the earlier ones of the batch have taken theirs.

    Everything is loaded once for the whole batch (a fixed number of queries);
    `take` records an offer in memory, so no therapist gets two offers that
    overlap or leave too little time to travel. A read, like the rest of this
    module: the caller locks the therapists it picked and then calls `refresh`
    with them, so the checks run on what is committed once the lock is held.

    For speed the ranked candidates of the last (service, start, end) asked
    about are kept sorted, and an offer only moves the therapist it went to (a
    sweep batch often holds many bookings of one time); the other bookings are
    checked lazily, best first, until a free therapist turns up.
    """

    def __init__(self, appointments: list[Appointment]):
        self.appointments = appointments
        self.facts = _load(appointments, None) if appointments else _Facts({}, {}, {}, {}, set(), travel_buffer())
        self.workload = _Workload.load(appointments, list(self.facts.users), self.facts.users)
        self.taken: dict[int, list[tuple[int, datetime, datetime, str]]] = defaultdict(list)
        # The standing candidates of one (service, start, end), best first, and their keys.
        self._slot: tuple | None = None
        self._ranked: list[tuple] = []
        self._keys: dict[int, tuple] = {}
        self._active_by_service: dict[int, list] = {}

    def _candidates(self, appt: Appointment) -> list:
        slot = (appt.service_id, appt.starts_at, appt.ends_at)
        if slot != self._slot:
            # The hot loop of a sweep with re-offer: `_Workload.key` written inline.
            workload = self.workload
            per_day, all_ends, before, names = workload.per_day, workload.ends, workload.before, workload.names
            starts_at, ends_at = appt.starts_at, appt.ends_at
            day = _local_date(starts_at, workload.tz)
            keys = {}
            for tid, slots in self._active(appt.service_id):
                for start, end in slots:
                    if start <= starts_at and ends_at <= end:
                        ends = all_ends.get(tid)
                        i = bisect_right(ends, starts_at) if ends else 0
                        last = ends[i - 1] if i else before.get(tid)
                        keys[tid] = (per_day.get((tid, day), 0), last or _EPOCH, names[tid], tid)
                        break
            self._slot, self._keys = slot, keys
            self._ranked = sorted((k, tid) for tid, k in keys.items())
        return self._ranked

    def _active(self, service_id: int) -> list[tuple[int, list]]:
        """The active therapists qualified for `service_id`, with their slots. The
        per-appointment exclusion (an accepted rejection) is checked in the walk."""
        if service_id not in self._active_by_service:
            facts = self.facts
            self._active_by_service[service_id] = [
                (tid, facts.slots.get(tid, ())) for tid in facts.qualified.get(service_id, ())
                if (user := facts.users.get(tid)) is not None and user.is_active
                and user.role == User.Role.THERAPIST]
        return self._active_by_service[service_id]

    def _free(self, appt: Appointment, skip):
        facts = self.facts
        busy, buffer, excluded, here = facts.busy, facts.buffer, facts.excluded, place_key(appt.location)
        for _, tid in self._candidates(appt):
            if tid in skip or (appt.id, tid) in excluded:
                continue
            if _clash(appt, busy.get(tid, ()), buffer, here) is None:
                yield tid

    def best(self, appt: Appointment, skip: set[int] = frozenset()) -> int | None:
        return next(self._free(appt, skip), None)

    def anyone(self, appt: Appointment, skip: set[int] = frozenset()) -> bool:
        return next(self._free(appt, skip), None) is not None

    def why_not(self, appt: Appointment, tid: int) -> str | None:
        return _verdict(appt, self.facts.users.get(tid), self.facts)

    def _moved(self, tid: int) -> None:
        """`tid`'s workload changed: move it in the ranked list kept."""
        keys = self._keys
        if tid in keys:
            starts_at = self._slot[1]
            self._ranked.pop(bisect_left(self._ranked, (keys[tid], tid)))
            keys[tid] = self.workload.key(starts_at, _local_date(starts_at, self.workload.tz), tid)
            insort(self._ranked, (keys[tid], tid))

    def take(self, appt: Appointment, tid: int) -> None:
        entry = (appt.id, appt.starts_at, appt.ends_at, place_key(appt.location))
        self.taken[tid].append(entry)
        self.facts.busy.setdefault(tid, []).append(entry)
        self.workload.add(tid, appt.starts_at, appt.ends_at)
        self._moved(tid)

    def give_back(self, appt: Appointment, tid: int) -> None:
        entry = (appt.id, appt.starts_at, appt.ends_at, place_key(appt.location))
        self.taken[tid].remove(entry)
        self.facts.busy[tid].remove(entry)
        self.workload.remove(tid, appt.starts_at, appt.ends_at)
        self._moved(tid)

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
        # Accounts or slots may have changed: rank again.
        self._slot, self._ranked, self._keys = None, [], {}
        self._active_by_service.clear()


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
