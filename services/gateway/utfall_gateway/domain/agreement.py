"""Agreement between what providers report and what the registers verify, as pure functions.

An outcome counts towards agreement when both sides decided it: the reported fact is achieved or not
achieved, and the register verified it achieved or not achieved. Its share of agreement carries a 95 % Wilson
interval. Outcomes only the register decided (the provider reported nothing, or nothing yet) and outcomes the
register excludes (a death or emigration) are counted beside it, never in it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from utfall_stats.wilson import wilson_interval

DECIDED = frozenset({"achieved", "not_achieved"})


class Interval(BaseModel):
    low: float
    high: float


class VerifiedCounts(BaseModel):
    achieved: int = 0
    not_achieved: int = 0
    excluded: int = 0
    unverified: int = 0


class Agreement(BaseModel):
    """One provider's (or every provider's) agreement on one measure."""

    provider_id: str | None
    compared: int  # outcomes both sides decided
    agree: int
    share: float | None
    interval: Interval | None
    register_only: int  # the register decided, the provider reported no answer (missing or pending)
    verified: VerifiedCounts


class Disagreement(BaseModel):
    provider_id: str
    episode_id: str
    discharge_year: int | None
    reported_status: str
    verified_status: str
    evidence: list[str]


@dataclass(frozen=True, slots=True)
class VerifiedRow:
    provider_id: str
    episode_id: str
    discharge_year: int | None
    status: str
    reported_status: str
    evidence: tuple[str, ...]

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> VerifiedRow:
        return cls(
            row["provider_id"],
            row["episode_id"],
            row["discharge_year"],
            row["status"],
            row["reported_status"],
            tuple(row["evidence"]),
        )

    @property
    def compared(self) -> bool:
        return self.status in DECIDED and self.reported_status in DECIDED

    @property
    def disagrees(self) -> bool:
        return self.compared and self.status != self.reported_status


def agreement(provider_id: str | None, rows: Iterable[VerifiedRow]) -> Agreement:
    rows = list(rows)
    compared = [r for r in rows if r.compared]
    agree = sum(1 for r in compared if not r.disagrees)
    counts = VerifiedCounts()
    for r in rows:
        setattr(counts, r.status, getattr(counts, r.status) + 1)
    bounds = wilson_interval(agree, len(compared))
    return Agreement(
        provider_id=provider_id,
        compared=len(compared),
        agree=agree,
        share=agree / len(compared) if compared else None,
        interval=Interval(low=bounds[0], high=bounds[1]) if bounds else None,
        register_only=sum(1 for r in rows if r.status in DECIDED and r.reported_status not in DECIDED),
        verified=counts,
    )


def by_provider(rows: Iterable[VerifiedRow]) -> list[Agreement]:
    grouped: dict[str, list[VerifiedRow]] = {}
    for r in rows:
        grouped.setdefault(r.provider_id, []).append(r)
    return [agreement(p, grouped[p]) for p in sorted(grouped)]


def disagreements(rows: Iterable[VerifiedRow]) -> list[Disagreement]:
    return [
        Disagreement(
            provider_id=r.provider_id,
            episode_id=r.episode_id,
            discharge_year=r.discharge_year,
            reported_status=r.reported_status,
            verified_status=r.status,
            evidence=list(r.evidence),
        )
        for r in sorted(rows, key=lambda r: (r.provider_id, r.episode_id))
        if r.disagrees
    ]
