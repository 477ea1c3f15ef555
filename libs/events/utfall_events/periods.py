"""Settlement periods of an outcome contract: a month or a quarter in Swedish time, named `2026-03` or `2026-Q1`.

Shared by the contracts service (which closes periods) and the gateway (which writes their statements)."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

SWEDEN = ZoneInfo("Europe/Stockholm")
PeriodKind = Literal["month", "quarter"]
_QUARTER = re.compile(r"^(?P<year>20\d\d)-Q(?P<quarter>[1-4])$")
_MONTH = re.compile(r"^(?P<year>20\d\d)-(?P<month>0[1-9]|1[0-2])$")


@dataclass(frozen=True, order=True)
class Period:
    """A statement period: `2026-Q1` or `2026-03`."""

    year: int
    first_month: int
    months: int

    @property
    def kind(self) -> PeriodKind:
        return "quarter" if self.months == 3 else "month"

    @property
    def label(self) -> str:
        if self.kind == "quarter":
            return f"{self.year}-Q{(self.first_month - 1) // 3 + 1}"
        return f"{self.year}-{self.first_month:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.first_month, 1, tzinfo=SWEDEN)

    @property
    def end(self) -> datetime:
        month = self.first_month + self.months
        year = self.year + (month - 1) // 12
        return datetime(year, (month - 1) % 12 + 1, 1, tzinfo=SWEDEN)

    @property
    def last_day(self) -> date:
        return date.fromordinal(self.end.date().toordinal() - 1)


def parse_period(text: str) -> Period | None:
    if match := _QUARTER.match(text):
        return Period(int(match["year"]), (int(match["quarter"]) - 1) * 3 + 1, 3)
    if match := _MONTH.match(text):
        return Period(int(match["year"]), int(match["month"]), 1)
    return None


def period_of(moment: datetime, kind: PeriodKind) -> Period:
    local = moment.astimezone(SWEDEN)
    if kind == "quarter":
        return Period(local.year, (local.month - 1) // 3 * 3 + 1, 3)
    return Period(local.year, local.month, 1)


def periods_between(first: datetime, last: datetime, kind: PeriodKind) -> list[Period]:
    """Every period from the one holding `first` to the one holding `last`, oldest first."""
    out, period = [], period_of(first, kind)
    final = period_of(last, kind)
    while period <= final:
        out.append(period)
        period = period_of(period.end, kind)
    return out


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (2024-01-31 + 1 month = 2024-02-29)."""
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def noon(day: date) -> datetime:
    """A day as a moment in Swedish time (for the period that holds it)."""
    return datetime.combine(day, time(12), tzinfo=SWEDEN)
