"""A therapist's calendar feed: GET /calendar/<secret>.ics, no login (the address
carries its own secret; guitara/urls.py routes it, so accounts never imports
scheduling).

RFC 5545, built with `icalendar`: the therapist's appointments from 30 days ago
on. Pending ones are TENTATIVE and say "awaiting your answer" (a rejected one
waiting for review is tentative too); confirmed, in progress and completed ones
are CONFIRMED; cancelled ones are STATUS:CANCELLED so subscribed calendars drop
them. Each event has a stable UID per appointment and carries the client's first
name (never the full name or phone: a calendar address gets shared), the
service, location and notes. An appointment that leaves the therapist (its
rejection accepted, reassigned) leaves the feed, and calendars drop it at their
next refresh. A rotated or unknown secret, and a disabled account, answer 404.
"""

from datetime import UTC, timedelta

from django.conf import settings
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from icalendar import Calendar, Event

from accounts import formatting
from accounts.models import User

from .models import Appointment

DAYS_BACK = 30
# A feed is read every few minutes by calendar apps: keep it bounded.
MAX_EVENTS = 2000
UID_DOMAIN = "royal-care-scheduling"

Status = Appointment.Status
_ICAL_STATUS = {
    Status.PENDING: "TENTATIVE",
    Status.REJECTED: "TENTATIVE",
    Status.CONFIRMED: "CONFIRMED",
    Status.IN_PROGRESS: "CONFIRMED",
    Status.COMPLETED: "CONFIRMED",
    Status.CANCELLED: "CANCELLED",
}
_PREFIX = {
    Status.PENDING: "Awaiting your answer: ",
    Status.REJECTED: "Rejected, under review: ",
    Status.CANCELLED: "Cancelled: ",
}


def appointment_uid(appointment_id: int) -> str:
    return f"appointment-{appointment_id}@{UID_DOMAIN}"


def _event(appt: Appointment, now) -> Event:
    first_name = (appt.client.name.split() or ["Client"])[0]
    event = Event()
    event.add("uid", appointment_uid(appt.id))
    event.add("dtstamp", appt.updated_at.astimezone(UTC))
    event.add("created", appt.created_at.astimezone(UTC))
    event.add("last-modified", appt.updated_at.astimezone(UTC))
    event.add("dtstart", appt.starts_at.astimezone(UTC))
    event.add("dtend", appt.ends_at.astimezone(UTC))
    event.add("summary", f"{_PREFIX.get(appt.status, '')}{appt.service.name} – {first_name}")
    event.add("location", appt.location)
    lines = [f"Client: {first_name}", f"Service: {appt.service.name} ({appt.service.duration_minutes} min)"]
    if appt.status == Status.PENDING and appt.therapist_id and appt.response_deadline:
        lines.insert(0, f"Awaiting your answer, due by {formatting.when(appt.response_deadline, now=now)}.")
    if appt.notes:
        lines.append(f"Notes: {appt.notes}")
    link = f"{settings.SITE_URL}/therapist/?appointment={appt.id}"
    lines.append(link)
    event.add("description", "\n".join(lines))
    event.add("url", link)
    event.add("status", _ICAL_STATUS[appt.status])
    event.add("transp", "TRANSPARENT" if appt.status == Status.CANCELLED else "OPAQUE")
    return event


@require_GET
def calendar_feed(request, secret: str):
    therapist = User.objects.filter(calendar_secret=secret, role=User.Role.THERAPIST, is_active=True).first()
    if therapist is None:
        raise Http404("No such calendar.")
    now = timezone.now()
    appointments = (Appointment.objects.filter(therapist=therapist, starts_at__gte=now - timedelta(days=DAYS_BACK))
                    .select_related("client", "service").order_by("starts_at", "id")[:MAX_EVENTS])
    calendar = Calendar()
    calendar.add("prodid", "-//Royal Care//Scheduling//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"Royal Care – {therapist.display_name}")
    calendar.add("x-wr-timezone", settings.TIME_ZONE)
    # How often subscribed calendars should look again (RFC 7986 and the de facto one).
    calendar.add("refresh-interval", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT15M")
    for appt in appointments:
        calendar.add_component(_event(appt, now))
    response = HttpResponse(calendar.to_ical(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="royal-care.ics"'
    response["Cache-Control"] = "private, no-cache"
    response["X-Robots-Tag"] = "noindex"
    return response
