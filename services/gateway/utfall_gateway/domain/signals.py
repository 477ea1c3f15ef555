"""Signals of data errors and gaming, per provider, as pure functions of counts the read models give.

Each signal is a share or a median with a 95 % interval and the national reference (every provider pooled),
for an operator or a contract's assessor to decide where to look. None is a verdict: a high value says
"check this provider's records", and the interval says how much of it chance could explain.

Two signals look for a change in how a provider reports rather than a level (discharges reported as planned,
follow-ups sent just before the measure's deadline): their value is the provider's latest discharge year, and
their reference is also the provider's own earlier years (`history`), since providers differ in what they do
but a jump against one's own habit is what gaming looks like."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from utfall_stats.wilson import Z95, wilson_interval


class SignalDefinition(BaseModel):
    id: str
    unit: str  # "per 100 events" | "%" | "days"
    # own_history: the value is the provider's latest discharge year, against its earlier years
    compared_with: Literal["national", "own_history"] = "national"
    title: dict[str, str]
    definition: dict[str, str]


class SignalValue(BaseModel):
    id: str
    value: float | None
    low: float | None
    high: float | None
    n: int
    national: float | None
    year: int | None = None  # a signal against the provider's own history: the discharge year it is of
    history: float | None = None  # the same signal over the provider's earlier discharge years

    @property
    def reference(self) -> float | None:
        """What the value is compared with: the provider's own history where the signal has one."""
        return self.history if self.history is not None else self.national

    @property
    def above_reference(self) -> bool:
        """The whole 95 % interval lies above the reference: more than chance explains."""
        ref = self.reference
        return self.low is not None and ref is not None and self.low > ref


DEFINITIONS: tuple[SignalDefinition, ...] = (
    SignalDefinition(
        id="retractions_per_100_events",
        unit="per 100 events",
        title={"sv": "Återkallelser per 100 händelser", "en": "Retractions per 100 events"},
        definition={
            "sv": "Återkallade händelser (varje rättelse börjar med en) per 100 händelser som utföraren skickat.",
            "en": "Events the provider retracted (every correction starts with one) per 100 events it sent.",
        },
    ),
    SignalDefinition(
        id="reporting_lag_days",
        unit="days",
        title={"sv": "Rapporteringsfördröjning (median)", "en": "Reporting lag (median)"},
        definition={
            "sv": "Dagar från händelsens eget datum (start, avslut, uppföljning) till att Utfall tog emot den; "
            "median med 95 % fördelningsfritt intervall.",
            "en": "Days from an event's own date (start, end, follow-up) to its arrival at Utfall; the median "
            "with a 95 % distribution-free interval.",
        },
    ),
    SignalDefinition(
        id="followups_missing_share",
        unit="%",
        title={"sv": "Saknade uppföljningar", "en": "Follow-ups missing"},
        definition={
            "sv": "Andel avslutade placeringar vars 12-månadersfönster stängt utan uppföljning.",
            "en": "Share of closed placements whose 12-month window closed without a follow-up.",
        },
    ),
    SignalDefinition(
        id="changed_after_payment_share",
        unit="%",
        title={"sv": "Utfall ändrade efter betalning", "en": "Outcomes changed after payment"},
        definition={
            "sv": "Andel betalningar som återförts för att utfallet ändrades (inte för tak, bestridanden eller "
            "kohort).",
            "en": "Share of payments reversed because the outcome changed (not for caps, disputes or the "
            "cohort).",
        },
    ),
    SignalDefinition(
        id="register_disagreement_share",
        unit="%",
        title={"sv": "Avvikelse från register", "en": "Disagreement with registers"},
        definition={
            "sv": "Av utfall som både utföraren och ett register avgjort: andelen där de skiljer sig.",
            "en": "Of the outcomes both the provider and a register decided: the share where they differ.",
        },
    ),
    SignalDefinition(
        id="planned_discharges_share",
        unit="%",
        compared_with="own_history",
        title={"sv": "Avslut rapporterade som planerade", "en": "Discharges reported as planned"},
        definition={
            "sv": "Andel avslut under utförarens senaste utskrivningsår som rapporterats som planerade, mot "
            "utförarens egna tidigare år och mot riket samma år.",
            "en": "Share of the discharges of the provider's latest discharge year reported as planned, against "
            "the provider's own earlier years and the national share of that year.",
        },
    ),
    SignalDefinition(
        id="followups_near_deadline_share",
        unit="%",
        compared_with="own_history",
        title={"sv": "Uppföljningar strax före tidsgränsen", "en": "Follow-ups just before the deadline"},
        definition={
            "sv": "Andel 12-månadersuppföljningar (för utförarens senaste utskrivningsår) som kom in de sista 30 "
            "dagarna innan måttet räknar dem som saknade (fönstret plus 60 dagar), mot utförarens egna tidigare "
            "år och mot riket samma år.",
            "en": "Share of 12-month follow-ups (of the provider's latest discharge year) that arrived in the "
            "last 30 days before the measure counts them as missing (the window plus 60 days), against the "
            "provider's own earlier years and the national share of that year.",
        },
    ),
)

# Reversals for reasons other than the outcome (the ledger's own words for them, `contracts/domain/book.py`).
_NOT_AN_OUTCOME_CHANGE = (
    "room under a cap freed up",
    "a cap leaves less",
    "the total cap is taken",
    "the commissioner upheld a dispute",
    "the participant is no longer in the contract's cohort",
)


def reversed_for_outcome(reason: str | None) -> bool:
    return reason is not None and not reason.startswith(_NOT_AN_OUTCOME_CHANGE)


@dataclass(frozen=True, slots=True)
class Share:
    """`hits` of `n`, to be shown as a share (×`scale`) with a Wilson interval."""

    hits: int
    n: int


def share_signal(signal_id: str, own: Share, national: Share, scale: float = 100.0) -> SignalValue:
    bounds = wilson_interval(own.hits, own.n)
    return SignalValue(
        id=signal_id,
        value=own.hits / own.n * scale if own.n else None,
        low=bounds[0] * scale if bounds else None,
        high=bounds[1] * scale if bounds else None,
        n=own.n,
        national=national.hits / national.n * scale if national.n else None,
    )


def _kth(histogram: list[tuple[int, int]], k: int) -> int:
    """The k-th smallest (1-based) value of a histogram of (value, count), sorted by value."""
    seen = 0
    for value, count in histogram:
        seen += count
        if seen >= k:
            return value
    return histogram[-1][0]


def median_signal(signal_id: str, own: Mapping[int, int], national: Mapping[int, int]) -> SignalValue:
    """The median of a histogram (value → count) with the distribution-free 95 % interval of the order
    statistics n/2 ± 1.96·√n/2 (the binomial's normal approximation)."""
    hist = sorted((v, c) for v, c in own.items() if c > 0)
    n = sum(c for _, c in hist)
    whole = sorted((v, c) for v, c in national.items() if c > 0)
    total = sum(c for _, c in whole)
    national_median = (_kth(whole, (total + 1) // 2) + _kth(whole, total // 2 + 1)) / 2 if total else None
    if n == 0:
        return SignalValue(id=signal_id, value=None, low=None, high=None, n=0, national=national_median)
    half = Z95 * math.sqrt(n) / 2
    low_rank, high_rank = max(1, math.floor(n / 2 - half)), min(n, math.ceil(n / 2 + half) + 1)
    median = (_kth(hist, (n + 1) // 2) + _kth(hist, n // 2 + 1)) / 2
    return SignalValue(
        id=signal_id,
        value=median,
        low=float(_kth(hist, low_rank)),
        high=float(_kth(hist, high_rank)),
        n=n,
        national=national_median,
    )


def pooled(shares: Iterable[Share]) -> Share:
    shares = list(shares)
    return Share(sum(s.hits for s in shares), sum(s.n for s in shares))


def history_signal(
    signal_id: str, own: Mapping[int, Share], national: Mapping[int, Share], scale: float = 100.0
) -> SignalValue:
    """A share of the provider's latest year (by discharge year), beside the same share of its earlier years
    and the national share of that year."""
    years = sorted(y for y, s in own.items() if s.n)
    if not years:
        return SignalValue(id=signal_id, value=None, low=None, high=None, n=0, national=None)
    latest = years[-1]
    earlier = pooled(own[y] for y in years[:-1])
    value = share_signal(signal_id, own[latest], national.get(latest, Share(0, 0)), scale)
    return value.model_copy(
        update={"year": latest, "history": earlier.hits / earlier.n * scale if earlier.n else None}
    )


MAX_EXTRA_WEIGHT = 4.0


def sampling_weight(signals: Iterable[SignalValue]) -> float:
    """How much more often an assessor's weighted sample draws a provider's payments: 1, plus for each signal
    whose whole interval lies above its reference (its own history, else the national value), how far above
    it (relative to it), at most
    MAX_EXTRA_WEIGHT in all. A provider no signal sets apart weighs 1, as in the uniform sample."""
    extra = 0.0
    for s in signals:
        ref = s.reference
        if s.above_reference and ref is not None and ref > 0 and s.low is not None:
            extra += (s.low - ref) / ref
    return 1.0 + min(extra, MAX_EXTRA_WEIGHT)


def weighted_order(seed: str, item_id: str, weight: float) -> float:
    """A payment's place in a weighted sample without replacement (Efraimidis–Spirakis, as an exponential
    race): a uniform number from SHA-256 of seed and id, -ln(u)/weight; the smallest come first. The same seed
    gives the same order; a weight of 2 is drawn first twice as often against a weight of 1."""
    digest = hashlib.sha256(f"{seed}|{item_id}".encode()).digest()
    u = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 2)  # in (0, 1)
    return -math.log(u) / weight
