"""Calendar arithmetic for outcome windows."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

from utfall_events.periods import add_months

__all__ = ["GRACE_DAYS", "add_months", "closes_on", "quarter_of", "window_end"]

GRACE_DAYS = 60


# Pure and asked for each fact of every re-folded episode, of a few thousand distinct end dates: cached.
@lru_cache(maxsize=1 << 14)
def window_end(end_date: date, months: int) -> date:
    return add_months(end_date, months)


@lru_cache(maxsize=1 << 14)
def closes_on(end_date: date, months: int, grace_days: int = GRACE_DAYS) -> date:
    """The last day a fact of this window is still `pending`; from the next day it is closed."""
    return window_end(end_date, months) + timedelta(days=grace_days)


def quarter_of(day: date) -> int:
    return (day.month - 1) // 3 + 1
