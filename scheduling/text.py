"""How server-made sentences (notifications, refusals, sweep lines) write times:
in the business time zone, the way people say them."""

from datetime import datetime

from django.utils import timezone


def hhmm(value: datetime) -> str:
    return timezone.localtime(value).strftime("%H:%M")


def when(value: datetime) -> str:
    return timezone.localtime(value).strftime("%a %d %b %H:%M")


def sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def id_list(ids: list[int], *, limit: int = 20) -> str:
    """`#41, #42, #57`, at most `limit` of them, then `and N more`."""
    shown = ", ".join(f"#{i}" for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
