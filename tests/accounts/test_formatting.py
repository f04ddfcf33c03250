"""The one date and time format of every server-made message ("Wed, Dec 2, 1:30 PM"),
the same as the pages', in the business time zone."""

from datetime import UTC, datetime

import pytest
from django.template import Context, Template

from accounts import formatting

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # Wed, Dec 2, 5:00 PM in Manila


@pytest.mark.parametrize(("value", "expected"), [
    (datetime(2026, 12, 2, 5, 30, tzinfo=UTC), "1:30 PM"),                       # today: no date
    (datetime(2026, 12, 2, 4, 5, tzinfo=UTC), "12:05 PM"),
    (datetime(2026, 12, 1, 16, 0, tzinfo=UTC), "12:00 AM"),                      # Manila's midnight: UTC's day before
    (datetime(2026, 12, 3, 2, 15, tzinfo=UTC), "Thu, Dec 3, 10:15 AM"),          # tomorrow: with the date
    (datetime(2027, 1, 7, 1, 0, tzinfo=UTC), "Thu, Jan 7, 2027, 9:00 AM"),       # another year: with the year
])
def test_when_says_the_date_whenever_it_is_not_today(value, expected):
    assert formatting.when(value, now=NOW) == expected


def test_stored_text_always_carries_the_date():
    assert formatting.when(datetime(2026, 12, 2, 5, 30, tzinfo=UTC), now=NOW, always_date=True) == "Wed, Dec 2, 1:30 PM"


def test_ranges_name_the_end_by_its_time_or_both_dates_across_midnight():
    start = datetime(2026, 12, 3, 5, 30, tzinfo=UTC)
    assert formatting.when_range(start, datetime(2026, 12, 3, 6, 30, tzinfo=UTC), now=NOW) == \
        "Thu, Dec 3, 1:30 PM – 2:30 PM"
    assert formatting.when_range(datetime(2026, 12, 3, 15, 30, tzinfo=UTC), datetime(2026, 12, 3, 16, 30, tzinfo=UTC),
                                 now=NOW) == "Thu, Dec 3, 11:30 PM – Fri, Dec 4, 12:30 AM"


def test_the_template_filters_use_the_same_format(settings):
    value = datetime(2030, 12, 2, 5, 30, tzinfo=UTC)
    html = Template("{% load formatting %}{{ value|when }} / {{ value|when_range:end }}").render(
        Context({"value": value, "end": datetime(2030, 12, 2, 6, 0, tzinfo=UTC)}))
    assert html == "Mon, Dec 2, 2030, 1:30 PM / Mon, Dec 2, 2030, 1:30 PM – 2:00 PM"
