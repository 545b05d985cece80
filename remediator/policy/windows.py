"""Maintenance windows: recurring UTC periods in which the remediator never acts."""

from __future__ import annotations

import datetime as dt

from remediator.config import MaintenanceWindow

WEEKDAY_INDEX = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}


def in_window(window: MaintenanceWindow, at: dt.datetime) -> bool:
    """Return whether a UTC time falls in a recurring maintenance window."""
    at = at.astimezone(dt.UTC)
    start = dt.time.fromisoformat(window.start)
    end = dt.time.fromisoformat(window.end)
    if window.weekday is not None and at.weekday() != WEEKDAY_INDEX[window.weekday]:
        return False
    if window.nth_of_month is not None and (at.day - 1) // 7 + 1 != window.nth_of_month:
        return False
    current = at.time()
    if start == end:
        return True  # a whole day (e.g. every day of a weekday window)
    return start <= current < end if start < end else current >= start or current < end
