import calendar
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscriptions.periods import add_interval, nth_period_end


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_monthly_from_jan_31_keeps_the_anchor_through_february():
    start = utc(2028, 1, 31, 9, 30)
    feb = add_interval(start, "month")
    assert feb == utc(2028, 2, 29, 9, 30)  # leap year
    assert add_interval(feb, "month", anchor_day=31) == utc(2028, 3, 31, 9, 30)
    assert add_interval(utc(2027, 1, 31), "month") == utc(2027, 2, 28)
    assert add_interval(utc(2027, 2, 28), "month", anchor_day=31) == utc(2027, 3, 31)
    assert [nth_period_end(start, "month", n=n).date().isoformat() for n in range(1, 5)] == [
        "2028-02-29",
        "2028-03-31",
        "2028-04-30",
        "2028-05-31",
    ]


def test_annual_from_leap_day():
    assert add_interval(utc(2028, 2, 29), "year") == utc(2029, 2, 28)
    assert nth_period_end(utc(2028, 2, 29), "year", n=4) == utc(2032, 2, 29)


def test_days_weeks_and_unknown_interval():
    assert add_interval(utc(2027, 12, 31), "day", 1) == utc(2028, 1, 1)
    assert add_interval(utc(2027, 12, 31), "week", 2) == utc(2028, 1, 14)
    assert add_interval(utc(2027, 11, 30), "month", 3) == utc(2028, 2, 29)
    with pytest.raises(ValueError):
        add_interval(utc(2027, 1, 1), "fortnight")


@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    n=st.integers(min_value=1, max_value=120),
)
def test_period_ends_never_drift_and_always_increase(start, n):
    end = nth_period_end(start, "month", n=n)
    previous = nth_period_end(start, "month", n=n - 1) if n > 1 else start
    assert previous < end
    # The day is the anchor, clamped to the month's length; never earlier than it must be.
    assert end.day == min(start.day, calendar.monthrange(end.year, end.month)[1])
    assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == n
    assert end.time() == start.time()
