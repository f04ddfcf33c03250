"""Permission-aware reads. A therapist only ever gets their own appointments;
anything else is 'not found'. Every list query here has a fixed query count."""

from datetime import date, datetime, time, timedelta

from django.db.models import Count, Max, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import User

from .models import Appointment, AppointmentEvent, Availability


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
                        search: str = "") -> QuerySet[Appointment]:
    now = timezone.now()
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
        qs = qs.filter(therapist=user)
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
