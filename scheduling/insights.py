"""Insights: how offers fare, who answers and how fast, why offers are rejected
and how many bookings are lost, over an inclusive range of business dates.

A read, like the selectors: nothing here changes anything, and `insights()`
costs the same four queries whatever the range and however many rows exist:

1. the offers made in the range paired with their answers, per therapist and
   in all, with the median response times (`offer_figures`);
2. the appointments starting in the range, counted by business date, status
   and cancellation reason (one grouped query);
3. the rejections made in the range, counted by reason code (one grouped query);
4. the therapists, so that those without an offer are listed too.

An offer (DESIGN.md, *Insights*) is each time an appointment is put to a
therapist with a fresh deadline: an `assigned` event (by hand or automatic), a
`reassigned` to a therapist, a `rescheduled` that keeps its therapist. A
`reassigned` or `rescheduled` event whose therapist is the one named in
`data.from_therapist` took the appointment away from them (back to the queue):
it ends their offer without making a new one. A denied rejection is not a new
offer: it continues the one that was rejected. So an offer's answer is the last
accept, reject or timeout of that appointment by that therapist before the
appointment's next offer: rejected, denied and then accepted counts once, as
accepted. An offer nobody answered yet (or that was withdrawn) counts as an
offer with no answer.

Response time runs from the offer to its answer, for accepts and rejects
(timeouts are counted, not timed); for an offer continued after a denied
rejection that is the time to the final answer, the review included.

Dates are business dates (`settings.TIME_ZONE`): an offer belongs to the day it
was made, an appointment to the day it starts, a rejection to the day it was
made. An answer given after the range to an offer made in it still counts.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import Case, Count, Q, When
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDate

from accounts.models import User

from .models import Appointment, AppointmentEvent, AppointmentRejection

Kind = AppointmentEvent.Kind
# `reassigned` and `rescheduled` are written by the reassign and reschedule
# transitions; they are matched by name so that this module does not depend on them.
REASSIGNED = "reassigned"
RESCHEDULED = "rescheduled"
OFFER_KINDS = (Kind.ASSIGNED, REASSIGNED, RESCHEDULED)
ANSWER_KINDS = (Kind.ACCEPTED, Kind.REJECTED, Kind.TIMED_OUT)
TIMED_ANSWERS = (Kind.ACCEPTED, Kind.REJECTED)
DEFAULT_DAYS = 30
MAX_DAYS = 366


def business_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def business_today() -> date:
    return datetime.now(business_zone()).date()


def default_range() -> tuple[date, date]:
    """The last 30 days, today included."""
    today = business_today()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def month_to_date() -> tuple[date, date]:
    today = business_today()
    return today.replace(day=1), today


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[midnight starting `first`, midnight ending `last`) in the business zone."""
    zone = business_zone()
    return (datetime.combine(first, time.min, tzinfo=zone),
            datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone))


# ---------------------------------------------------------------------------
# Offers and their answers.
# ---------------------------------------------------------------------------


@dataclass
class OfferFigures:
    offers: int = 0
    accepted: int = 0
    rejected: int = 0
    timed_out: int = 0
    median_response_seconds: float | None = None

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.offers if self.offers else None

    def as_dict(self) -> dict:
        return {"offers": self.offers, "accepted": self.accepted, "rejected": self.rejected,
                "timed_out": self.timed_out, "acceptance_rate": self.acceptance_rate,
                "median_response_seconds": self.median_response_seconds}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def offer_figures(first: date, last: date, *, therapist_id: int | None = None,
                  ) -> tuple[dict[int, OfferFigures], OfferFigures]:
    """Per therapist, and for everyone together: the offers made from `first` to
    `last` and how they were answered. One query; with `therapist_id`, only that
    therapist's offers are read (a therapist answers only their own latest offer,
    so their own events suffice).

    On PostgreSQL the pairing and the medians run in the database (`_figures_in_sql`),
    so 100,000 events cost one short result instead of a long one; elsewhere (the
    embedded SQLite default) the same events are paired here (`_figures_in_python`).
    The tests hold the two to the same answers."""
    if connection.vendor == "postgresql":
        return _figures_in_sql(first, last, therapist_id)
    return _figures_in_python(first, last, therapist_id)


def offered_to(kind: str, therapist_id: int | None, to_status: str, from_therapist: str | None) -> int | None:
    """The therapist an offer-kind event puts the appointment to, or None when it is
    not an offer (a reassign or reschedule back to the queue). `_figures_in_sql`
    states the same rule in SQL."""
    if therapist_id is None or to_status != Appointment.Status.PENDING:
        return None
    if kind != Kind.ASSIGNED and from_therapist is not None and str(therapist_id) == str(from_therapist):
        return None
    return therapist_id


def _figures_in_python(first: date, last: date, therapist_id: int | None,
                       ) -> tuple[dict[int, OfferFigures], OfferFigures]:
    start, end = day_bounds(first, last)
    offered = AppointmentEvent.objects.filter(kind__in=OFFER_KINDS, created_at__gte=start, created_at__lt=end)
    # Events from the start of the range on: earlier ones belong to earlier offers.
    # Answers to this range's offers may come after its end, so past the end only
    # the events of the appointments offered in the range are read.
    events = AppointmentEvent.objects.filter(kind__in=OFFER_KINDS + ANSWER_KINDS, created_at__gte=start).filter(
        Q(created_at__lt=end) | Q(appointment_id__in=offered.values("appointment_id")))
    if therapist_id is not None:
        events = events.filter(therapist_id=therapist_id)
    rows = (
        events.annotate(from_therapist=Case(When(kind__in=(REASSIGNED, RESCHEDULED), then=KT("data__from_therapist"))))
        .order_by("id")
        .values_list("appointment_id", "kind", "therapist_id", "to_status", "created_at", "from_therapist")
    )
    # appointment id -> its open offer: [therapist id, offered at, answer kind, answered at]
    open_offers: dict[int, list | None] = {}
    made: list[list] = []
    for appointment_id, kind, tid, to_status, at, from_therapist in rows:
        if kind in ANSWER_KINDS:
            offer = open_offers.get(appointment_id)
            # The last answer wins: a rejection that was denied is followed by another.
            if offer is not None and offer[0] == tid:
                offer[2] = kind
                offer[3] = at
            continue
        to = offered_to(kind, tid, to_status, from_therapist)
        if to is not None and at < end:
            offer = [to, at, None, None]
            made.append(offer)
            open_offers[appointment_id] = offer
        else:
            # A later offer, or the appointment taken back: the open offer is over.
            open_offers[appointment_id] = None
    figures: dict[int, OfferFigures] = defaultdict(OfferFigures)
    seconds: dict[int, list[float]] = defaultdict(list)
    for tid, offered_at, answer, answered_at in made:
        f = figures[tid]
        f.offers += 1
        if answer == Kind.ACCEPTED:
            f.accepted += 1
        elif answer == Kind.REJECTED:
            f.rejected += 1
        elif answer == Kind.TIMED_OUT:
            f.timed_out += 1
        if answer in TIMED_ANSWERS:
            seconds[tid].append((answered_at - offered_at).total_seconds())
    everyone = OfferFigures()
    for tid, f in figures.items():
        f.median_response_seconds = _median(seconds[tid])
        everyone.offers += f.offers
        everyone.accepted += f.accepted
        everyone.rejected += f.rejected
        everyone.timed_out += f.timed_out
    everyone.median_response_seconds = _median([x for values in seconds.values() for x in values])
    return dict(figures), everyone


# The same pairing as `_figures_in_python`, in one statement. Each offer-kind
# event knows the next one of its appointment (`next_id`); an offer's answers are
# its therapist's answer events between the two, and the last of them is its
# answer. Answers past the end of the range are read only for appointments
# offered in the range (the hashed sub-plan is never built when nothing lies
# past the end, as for any range that ends today).
_FIGURES_SQL = """
WITH offer_events AS (
    SELECT e.id, e.appointment_id, e.created_at,
           CASE WHEN e.therapist_id IS NOT NULL AND e.to_status = %(pending)s
                     AND (e.kind = %(assigned)s
                          OR (e.data ->> 'from_therapist') IS DISTINCT FROM e.therapist_id::text)
                THEN e.therapist_id END AS offered_to,
           LEAD(e.id) OVER (PARTITION BY e.appointment_id ORDER BY e.id) AS next_id
    FROM {events} e
    WHERE e.kind = ANY(%(offer_kinds)s) AND e.created_at >= %(start)s {only_therapist}
), offers AS (
    SELECT id, appointment_id, created_at, offered_to, next_id FROM offer_events
    WHERE offered_to IS NOT NULL AND created_at < %(end)s
), answers AS (
    SELECT DISTINCT ON (o.id) o.id AS offer_id, a.kind, a.created_at
    FROM offers o JOIN {events} a
      ON a.appointment_id = o.appointment_id AND a.therapist_id = o.offered_to
         AND a.id > o.id AND (o.next_id IS NULL OR a.id < o.next_id)
    WHERE a.kind = ANY(%(answer_kinds)s) AND a.created_at >= %(start)s
      AND (a.created_at < %(end)s OR a.appointment_id IN (SELECT appointment_id FROM offers))
    ORDER BY o.id, a.id DESC
)
SELECT GROUPING(o.offered_to) = 1, o.offered_to, COUNT(*),
       COUNT(*) FILTER (WHERE a.kind = %(accepted)s),
       COUNT(*) FILTER (WHERE a.kind = %(rejected)s),
       COUNT(*) FILTER (WHERE a.kind = %(timed_out)s),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY date_part('epoch', a.created_at) - date_part('epoch', o.created_at))
           FILTER (WHERE a.kind = %(accepted)s OR a.kind = %(rejected)s)
FROM offers o LEFT JOIN answers a ON a.offer_id = o.id
GROUP BY ROLLUP (o.offered_to)
"""


def _figures_in_sql(first: date, last: date, therapist_id: int | None,
                    ) -> tuple[dict[int, OfferFigures], OfferFigures]:
    start, end = day_bounds(first, last)
    sql = _FIGURES_SQL.format(events=AppointmentEvent._meta.db_table,
                              only_therapist="AND e.therapist_id = %(therapist)s" if therapist_id is not None else "")
    params = {
        "start": start, "end": end, "therapist": therapist_id, "pending": Appointment.Status.PENDING,
        "offer_kinds": list(OFFER_KINDS), "answer_kinds": list(ANSWER_KINDS), "assigned": Kind.ASSIGNED,
        "accepted": Kind.ACCEPTED, "rejected": Kind.REJECTED, "timed_out": Kind.TIMED_OUT,
    }
    figures: dict[int, OfferFigures] = {}
    everyone = OfferFigures()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for is_total, tid, offers, accepted, rejected, timed_out, median in cursor.fetchall():
            f = OfferFigures(offers, accepted, rejected, timed_out, None if median is None else round(median, 3))
            if is_total:
                everyone = f
            else:
                figures[tid] = f
    return figures, everyone


# ---------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------


def _appointment_counts(first: date, last: date) -> tuple[dict, list[dict]]:
    """Totals and per-day counts of the appointments starting in the range (one query)."""
    start, end = day_bounds(first, last)
    rows = (
        Appointment.objects.filter(starts_at__gte=start, starts_at__lt=end)
        .annotate(day=TruncDate("starts_at", tzinfo=business_zone()))
        .values_list("day", "status", "cancellation_reason")
        .annotate(n=Count("id"))
        .order_by()
    )
    cancelled = dict.fromkeys(Appointment.CancellationReason.values, 0)
    totals = {"appointments": 0, "completed": 0, "cancelled": cancelled}
    days = {first + timedelta(days=i): {"appointments": 0, "completed": 0, "cancelled": 0}
            for i in range((last - first).days + 1)}
    for day, status, reason, n in rows:
        per_day = days[day]
        totals["appointments"] += n
        per_day["appointments"] += n
        if status == Appointment.Status.COMPLETED:
            totals["completed"] += n
            per_day["completed"] += n
        elif status == Appointment.Status.CANCELLED:
            cancelled[reason or "unknown"] = cancelled.get(reason or "unknown", 0) + n
            per_day["cancelled"] += n
    return totals, [{"date": day.isoformat(), **counts} for day, counts in days.items()]


def _rejection_reasons(first: date, last: date) -> list[dict]:
    """Every reason code with how many rejections gave it, most frequent first (one query)."""
    start, end = day_bounds(first, last)
    counts = dict.fromkeys(AppointmentRejection.ReasonCode.values, 0)
    for code, n in (AppointmentRejection.objects.filter(created_at__gte=start, created_at__lt=end)
                    .values_list("reason_code").annotate(n=Count("id")).order_by()):
        counts[code] = counts.get(code, 0) + n
    order = {code: i for i, code in enumerate(counts)}
    return [{"code": code, "count": n} for code, n in sorted(counts.items(), key=lambda c: (-c[1], order[c[0]]))]


def insights(first: date, last: date) -> dict:
    """The operators' report (DESIGN.md, *Insights*), in four queries."""
    per_therapist, everyone = offer_figures(first, last)
    appointments, days = _appointment_counts(first, last)
    therapists = []
    for user in User.objects.filter(role=User.Role.THERAPIST).only("id", "username", "first_name", "last_name"):
        figures = per_therapist.get(user.id, OfferFigures())
        therapists.append({"id": user.id, "name": user.display_name, **figures.as_dict()})
    therapists.sort(key=lambda t: (-t["offers"], t["name"].lower(), t["id"]))
    totals = everyone.as_dict()
    del totals["acceptance_rate"]
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "totals": {**appointments, **totals},
        "therapists": therapists,
        "rejection_reasons": _rejection_reasons(first, last),
        "days": days,
    }


def therapist_insights(therapist: User, first: date, last: date) -> dict:
    """One therapist's own figures (one query): only their own offers count."""
    _, figures = offer_figures(first, last, therapist_id=therapist.id)
    return {"from": first.isoformat(), "to": last.isoformat(), **figures.as_dict()}


CSV_COLUMNS = ("id", "name", "offers", "accepted", "rejected", "timed_out", "acceptance_rate",
               "median_response_seconds")


def csv_rows(report: dict) -> list[list]:
    """The per-therapist table: a header row, then one row per therapist."""
    rows: list[list] = [list(CSV_COLUMNS)]
    for t in report["therapists"]:
        rows.append(["" if t[column] is None else t[column] for column in CSV_COLUMNS])
    return rows
