"""Maintenance windows: recurring periods, in Alertmanager's time_intervals shape, in which the remediator never acts.

The semantics are Alertmanager's (its timeinterval package): an instant is converted to the interval's location
and its local wall-clock time, date, weekday, month and year are matched. So a weekday applies to the local date
of the instant, a time range never crosses midnight, the hour a spring-forward change skips matches nothing, and
the hour a fall-back change repeats matches twice. The month's length comes from the calendar (as Alertmanager
since its fix for negative days_of_month in a month with a spring-forward change).
"""

from __future__ import annotations

import calendar
import datetime as dt

from remediator.config import MaintenanceWindow, TimeInterval


def in_window(window: MaintenanceWindow, at: dt.datetime) -> bool:
    """Return whether the instant `at` (timezone-aware) falls in any of the window's time intervals."""
    if at.tzinfo is None:
        raise ValueError("in_window needs a timezone-aware instant")
    return any(interval_contains(interval, at) for interval in window.time_intervals)


def interval_contains(interval: TimeInterval, at: dt.datetime) -> bool:
    """Return whether one time interval matches the instant `at`, read in the interval's local time."""
    local = at.astimezone(interval.zone)
    minute = local.hour * 60 + local.minute
    if interval.times and not any(start <= minute < end for start, end in (r.minutes for r in interval.times)):
        return False
    spans = interval.spans
    if spans["days_of_month"] and not _day_of_month_matches(spans["days_of_month"], local.date()):
        return False
    if spans["months"] and not _within(spans["months"], local.month):
        return False
    if spans["weekdays"] and not _within(spans["weekdays"], local.isoweekday() % 7):  # 0 = Sunday
        return False
    return not spans["years"] or _within(spans["years"], local.year)


def _within(spans: tuple[tuple[int, int], ...], value: int) -> bool:
    return any(begin <= value <= end for begin, end in spans)


def _day_of_month_matches(spans: tuple[tuple[int, int], ...], day: dt.date) -> bool:
    length = calendar.monthrange(day.year, day.month)[1]
    for begin, end in spans:
        first = length + begin + 1 if begin < 0 else begin
        last = length + end + 1 if end < 0 else end
        if first > length:
            continue  # e.g. day 31 in a 30-day month: no day matches
        if max(first, 1) <= day.day <= min(last, length):
            return True
    return False
