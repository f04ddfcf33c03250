"""The one way the server writes a date and time for people: "Wed, Dec 2, 1:30 PM",
in the business time zone, the same format the dashboards use (static/js/common.js).

Every app may import this (it lives in accounts, which depends on nothing of ours):
scheduling and notifications use it for notifications, errors and emails; the
templates use it through the `when` and `when_range` filters (`{% load formatting %}`).

The date is left out when the moment falls today, the way people say it ("by
1:30 PM"). Text that is stored and read later (a notification, a disable reason,
an email, the sweep's log) passes `always_date=True`: "today" would be wrong by then.

The zone is the business's (`TIME_ZONE`, `business_tz()`): nothing here activates a
per-user zone, and reading Django's "current" zone costs a thread-local lookup per
value, which a sweep of thousands of lines pays thousands of times.
A date in another year carries the year: "Thu, Jan 7, 2027, 9:00 AM".
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def business_tz():
    """The business time zone (`TIME_ZONE`), cached by Django until the setting changes."""
    return timezone.get_default_timezone()


def _clock(local: datetime) -> str:
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def _day(local: datetime, this_year: int) -> str:
    text = f"{_WEEKDAYS[local.weekday()]}, {_MONTHS[local.month - 1]} {local.day}"
    return text if local.year == this_year else f"{text}, {local.year}"


def time_of_day(value: datetime) -> str:
    """ "1:30 PM" """
    return _clock(timezone.localtime(value, business_tz()))


def day(value: datetime, *, now: datetime | None = None) -> str:
    """ "Wed, Dec 2" (with the year when it is not this year's) """
    tz = business_tz()
    return _day(timezone.localtime(value, tz), timezone.localtime(now or timezone.now(), tz).year)


def when(value: datetime, *, now: datetime | None = None, always_date: bool = False) -> str:
    """ "Wed, Dec 2, 1:30 PM", or "1:30 PM" when it is today (unless `always_date`).
    The time zone is looked up once (a sweep writes thousands of these)."""
    tz = business_tz()
    if value.utcoffset() is None:
        raise ValueError("when() needs an aware datetime")
    local = value.astimezone(tz)
    local_now = now.astimezone(tz) if now else datetime.now(tz)
    if not always_date and local.date() == local_now.date():
        return _clock(local)
    return f"{_day(local, local_now.year)}, {_clock(local)}"


def when_range(start: datetime, end: datetime, *, now: datetime | None = None, always_date: bool = False) -> str:
    """From a start to an end: the end by its time alone on the same day, both
    dates when it crosses midnight."""
    tz = business_tz()
    if timezone.localdate(start, tz) == timezone.localdate(end, tz):
        return f"{when(start, now=now, always_date=always_date)} – {time_of_day(end)}"
    return f"{when(start, now=now, always_date=True)} – {when(end, now=now, always_date=True)}"
