"""The one date and time format of pages, notifications, push messages and emails:
"Wed, Dec 2, 1:30 PM", with the date only when it is not today, in the business
time zone."""

from datetime import datetime

from django.utils import timezone


def clock(value: datetime) -> str:
    """1:30 PM"""
    local = timezone.localtime(value)
    return f"{local.hour % 12 or 12}:{local:%M} {'AM' if local.hour < 12 else 'PM'}"


def when(value: datetime, *, now: datetime | None = None) -> str:
    """1:30 PM today, otherwise Wed, Dec 2, 1:30 PM."""
    local = timezone.localtime(value)
    if local.date() == timezone.localtime(now or timezone.now()).date():
        return clock(value)
    return f"{local:%a}, {local:%b} {local.day}, {clock(value)}"
