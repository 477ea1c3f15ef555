"""Calendar arithmetic for outcome windows."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

GRACE_DAYS = 60


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (2024-01-31 + 1 month = 2024-02-29)."""
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def window_end(end_date: date, months: int) -> date:
    return add_months(end_date, months)


def closes_on(end_date: date, months: int, grace_days: int = GRACE_DAYS) -> date:
    """The last day a fact of this window is still `pending`; from the next day it is closed."""
    return window_end(end_date, months) + timedelta(days=grace_days)


def quarter_of(day: date) -> int:
    return (day.month - 1) // 3 + 1
