"""An injected clock: domain code never calls datetime.now()."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def today(self) -> date: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return self.now().date()


@dataclass
class FixedClock:
    """A clock tests and benchmarks move by hand."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def today(self) -> date:
        return self.current.date()

    def advance(self, **kwargs: float) -> None:
        self.current = self.current + timedelta(**kwargs)


@dataclass
class OffsetClock:
    """The system clock shifted by a fixed offset (UTFALL_CLOCK_OFFSET_DAYS), for demos of closing windows."""

    offset: timedelta

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def today(self) -> date:
        return self.now().date()


def clock_from_offset_days(days: float) -> Clock:
    return SystemClock() if not days else OffsetClock(timedelta(days=days))
