"""Permission-aware reads. A therapist only ever gets their own appointments;
anything else is 'not found'. Every list query here has a fixed query count."""

from datetime import date, datetime, time, timedelta

from django.db.models import Count, Max, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import User

from .models import Appointment, AppointmentEvent, Availability
from .payloads import appointment_json


def _with_related(qs: QuerySet[Appointment]) -> QuerySet[Appointment]:
    return qs.select_related("client", "service", "therapist").with_latest_rejection()


def appointments_for_user(user: User) -> QuerySet[Appointment]:
    qs = Appointment.objects.all()
    if not user.is_operator:
        qs = qs.filter(therapist=user)
    return _with_related(qs)


def appointment_for_user(user: User, appointment_id: int) -> Appointment:
    try:
        return appointments_for_user(user).get(pk=appointment_id)
    except (Appointment.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    start = timezone.make_aware(datetime.combine(day, time.min))
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def filter_appointments(qs: QuerySet[Appointment], *, statuses: list[str] | None = None,
                        therapist_id: int | None = None, day: date | None = None,
                        needs_review: bool | None = None, overdue: bool | None = None,
                        search: str = "", held_by_disabled: bool = False) -> QuerySet[Appointment]:
    now = timezone.now()
    if held_by_disabled:
        qs = qs.filter(therapist__is_active=False).open_ahead(now)
    if statuses:
        qs = qs.filter(status__in=statuses)
    if therapist_id is not None:
        qs = qs.filter(therapist_id=therapist_id)
    if day is not None:
        start, end = local_day_bounds(day)
        qs = qs.filter(starts_at__gte=start, starts_at__lt=end)
    if needs_review is not None:
        qs = qs.filter(status=Appointment.Status.REJECTED) if needs_review else qs.exclude(
            status=Appointment.Status.REJECTED)
    if overdue is not None:
        qs = qs.overdue(now) if overdue else qs.not_overdue(now)
    if search:
        qs = qs.filter(Q(client__name__icontains=search) | Q(client__phone__icontains=search)
                       | Q(location__icontains=search))
    return qs


def appointment_history(appointment: Appointment, user: User) -> QuerySet[AppointmentEvent]:
    """Oldest first. A therapist sees the events that concerned them (and the
    booking's creation), not another therapist's rejection of the same booking."""
    qs = appointment.events.select_related("actor", "therapist").order_by("id")
    if not user.is_operator:
        qs = qs.filter(Q(therapist=user) | Q(kind=AppointmentEvent.Kind.CREATED))
    return qs


def events_for_user(user: User, *, after: int, limit: int) -> list[AppointmentEvent]:
    """The caller's visible events after `after`, oldest first, each carrying its
    appointment's current state (a fixed number of queries)."""
    qs = AppointmentEvent.objects.filter(id__gt=after)
    if not user.is_operator:
        # A reassign away from them is theirs to see too (it removes their card).
        qs = qs.filter(Q(therapist=user) | Q(kind=AppointmentEvent.Kind.REASSIGNED, data__from_therapist=user.id))
    events = list(qs.order_by("id")[:limit])
    appointments = {a.id: a for a in _with_related(Appointment.objects.filter(
        id__in={e.appointment_id for e in events}))}
    for event in events:
        event.current = appointments[event.appointment_id]
    return events


def last_visible_event_id(user: User) -> int:
    """Where a dashboard's live feed starts: the newest event this user may see."""
    events = AppointmentEvent.objects.all() if user.is_operator else AppointmentEvent.objects.filter(therapist=user)
    return events.aggregate(last=Max("id"))["last"] or 0


def availability_for_user(user: User) -> QuerySet[Availability]:
    qs = Availability.objects.select_related("therapist")
    return qs if user.is_operator else qs.filter(therapist=user)


def disabled_therapists() -> QuerySet[User]:
    return User.objects.filter(role=User.Role.THERAPIST, is_active=False).order_by("-disabled_at")


def dashboard_counts() -> dict[str, int]:
    """The operator tabs' badges, one query."""
    now = timezone.now()
    row = Appointment.objects.filter(status__in=[Appointment.Status.PENDING, Appointment.Status.REJECTED]).aggregate(
        reviews=Count("id", filter=Q(status=Appointment.Status.REJECTED)),
        timeouts=Count("id", filter=Q(status=Appointment.Status.PENDING, therapist__isnull=False)),
        overdue=Count("id", filter=Appointment.overdue_q(now)),
        unassigned=Count("id", filter=Q(status=Appointment.Status.PENDING, therapist__isnull=True)),
    )
    return row


def day_board(day: date) -> dict:
    """The operators' day board for a business date: every therapist (disabled ones
    too: their jobs still need moving) with their availability and appointments
    that day, and the unassigned bookings. Cancelled appointments are left out:
    their time is free again. Four queries, however many therapists and
    appointments."""
    start, end = local_day_bounds(day)
    now = timezone.now()
    therapists = sorted(User.objects.filter(role=User.Role.THERAPIST),
                        key=lambda t: (not t.is_active, t.display_name.lower(), t.id))
    rows = {t.id: {"id": t.id, "name": t.display_name, "phone": t.phone, "is_active": t.is_active,
                   "availability": [], "appointments": []} for t in therapists}
    tz = timezone.get_current_timezone()
    for therapist_id, starts_at, ends_at in (Availability.objects.filter(starts_at__lt=end, ends_at__gt=start)
                                             .order_by("starts_at", "id")
                                             .values_list("therapist_id", "starts_at", "ends_at")):
        if therapist_id in rows:
            rows[therapist_id]["availability"].append(
                {"starts_at": starts_at.astimezone(tz).isoformat(), "ends_at": ends_at.astimezone(tz).isoformat()})
    unassigned = []
    appointments = _with_related(Appointment.objects.filter(starts_at__lt=end, ends_at__gt=start)
                                 .exclude(status=Appointment.Status.CANCELLED)).order_by("starts_at", "id")
    for appointment in appointments:
        body = appointment_json(appointment, now=now)
        if appointment.therapist_id is None:
            unassigned.append(body)
        elif appointment.therapist_id in rows:
            rows[appointment.therapist_id]["appointments"].append(body)
    return {"date": day.isoformat(), "therapists": [rows[t.id] for t in therapists], "unassigned": unassigned}
