"""How the workflow's sentences (notifications, refusals, sweep lines) write
times: `accounts.formatting`'s one format, always with the date, because these
texts are stored and read later, when "today" would be wrong."""

from datetime import datetime

from accounts import formatting


def when(value: datetime) -> str:
    return formatting.when(value, always_date=True)


def span(start: datetime, end: datetime) -> str:
    return formatting.when_range(start, end, always_date=True)


def sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def id_list(ids: list[int], *, limit: int = 20) -> str:
    """`#41, #42, #57`, at most `limit` of them, then `and N more`."""
    shown = ", ".join(f"#{i}" for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
