"""A contract's liability forecast, as a pure function over its open milestones, the observed rates of
comparable episodes and its ledger.

- **Maximum**: what the contract can still cost if every open milestone is achieved: per participant the open
  prices up to the per-participant cap left, all of it up to the total cap left.
- **Expected**: each open milestone's price times the rate at which comparable episodes (same measure, care type
  and target group, every provider) achieved that outcome among those determined (achieved, not achieved or
  missing; a missing outcome is not paid), then the same caps. Fewer than `MIN_COMPARABLE` comparable
  episodes: the measure's rate over every episode, and the line says so.
- **Planned and actual per period**, as the INDIGO data standard records outcome payments: each open milestone's
  expected amount falls in the period of its window's close (discharge + the measure's window; a participant
  still in care is expected to leave after the median stay of comparable episodes, at the earliest today);
  periods up to now carry the net actually paid (the ledger).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from utfall_events.catalogue import CATALOGUE
from utfall_events.periods import (
    Period,
    PeriodKind,
    add_months,
    noon,
    parse_period,
    period_of,
    periods_between,
)

MIN_COMPARABLE = 20
_WINDOWS = {m.id: m.window_months or 0 for m in CATALOGUE}


@dataclass(frozen=True, slots=True)
class OpenMilestone:
    provider_id: str
    episode_id: str
    milestone_id: str
    measure_id: str
    price_ore: int
    care_type: str
    target_group: str
    start_date: date
    end_date: date | None  # None while the participant is in care


@dataclass(frozen=True, slots=True)
class Rate:
    achieved: int
    determined: int

    @property
    def value(self) -> float:
        return self.achieved / self.determined if self.determined else 0.0


def expected_close(item: OpenMilestone, median_stay_days: Mapping[tuple[str, str], int], today: date) -> date:
    """When the milestone's window closes: discharge + the measure's window; for a participant still in care,
    discharge expected after the median stay of comparable episodes, not before today."""
    end = item.end_date
    if end is None:
        stay = median_stay_days.get((item.care_type, item.target_group), 365)
        end = max(today, item.start_date + timedelta(days=stay))
    return max(today, add_months(end, _WINDOWS.get(item.measure_id, 0)))


def rate_for(item: OpenMilestone, rates: Mapping[tuple[str, str, str], Rate]) -> tuple[float, str]:
    comparable = rates.get((item.measure_id, item.care_type, item.target_group), Rate(0, 0))
    if comparable.determined >= MIN_COMPARABLE:
        return (
            comparable.value,
            f"{item.care_type}, {item.target_group}: {comparable.achieved}/{comparable.determined}",
        )
    overall = Rate(
        sum(r.achieved for (m, _, _), r in rates.items() if m == item.measure_id),
        sum(r.determined for (m, _, _), r in rates.items() if m == item.measure_id),
    )
    return (
        overall.value,
        f"every episode (fewer than {MIN_COMPARABLE} comparable): {overall.achieved}/{overall.determined}",
    )


def apportion(parts: Sequence[float], total: int) -> list[int]:
    """Whole öre for each part that add up to `total` exactly (the largest remainders get the öre that rounding
    each part alone would lose or add): rounded one by one, a forecast's periods added up to a cent more than
    the cap left."""
    floors = [math.floor(p) for p in parts]
    short = total - sum(floors)
    by_remainder = sorted(range(len(parts)), key=lambda i: (floors[i] - parts[i], i))
    for i in by_remainder[: max(0, short)]:
        floors[i] += 1
    return floors


def forecast(
    contract: Mapping[str, Any],
    open_items: Sequence[OpenMilestone],
    paid_by_participant: Mapping[tuple[str, str], int],
    rates: Mapping[tuple[str, str, str], Rate],
    median_stay_days: Mapping[tuple[str, str], int],
    actual_by_period: Mapping[str, int],
    *,
    period_kind: PeriodKind,
    today: date,
) -> dict[str, Any]:
    per_participant_cap = int(contract["per_participant_cap_ore"])
    cap_left = int(contract["total_cap_ore"]) - int(contract["paid_net_ore"])
    by_participant: dict[tuple[str, str], list[tuple[OpenMilestone, float, str]]] = defaultdict(list)
    for item in open_items:
        rate, basis = rate_for(item, rates)
        by_participant[(item.provider_id, item.episode_id)].append((item, rate, basis))
    maximum_uncapped = expected_uncapped = 0.0
    lines: list[tuple[OpenMilestone, float, float, str]] = []  # item, maximum, expected, basis
    for key, items in by_participant.items():
        room = max(0, per_participant_cap - paid_by_participant.get(key, 0))
        prices = sum(i.price_ore for i, _, _ in items)
        expected = sum(i.price_ore * r for i, r, _ in items)
        # the per-participant cap scales the participant's lines alike
        max_scale = min(1.0, room / prices) if prices else 0.0
        exp_scale = min(1.0, room / expected) if expected else 0.0
        for item, rate, basis in items:
            lines.append((item, item.price_ore * max_scale, item.price_ore * rate * exp_scale, basis))
        maximum_uncapped += prices * max_scale
        expected_uncapped += expected * exp_scale
    maximum = min(float(cap_left), maximum_uncapped)
    expected_total = min(float(cap_left), expected_uncapped)
    scale = expected_total / expected_uncapped if expected_uncapped else 0.0

    milestones: dict[str, dict[str, Any]] = {}
    planned: dict[Period, float] = defaultdict(float)
    planned_by_milestone: dict[Period, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for item, most, expected, basis in lines:
        entry = milestones.setdefault(
            item.milestone_id,
            {
                "milestone_id": item.milestone_id,
                "measure_id": item.measure_id,
                "open": 0,
                "maximum": 0.0,
                "expected": 0.0,
                "rates": set(),
            },
        )
        entry["open"] += 1
        entry["maximum"] += most
        entry["expected"] += expected * scale
        entry["rates"].add(basis)
        close = expected_close(item, median_stay_days, today)
        period = period_of(noon(close), period_kind)
        planned[period] += expected * scale
        planned_by_milestone[period][item.milestone_id] += expected * scale

    now_period = period_of(noon(today), period_kind)
    actual_periods = {p for p in (_parse(label, period_kind) for label in actual_by_period) if p is not None}
    first = min([*actual_periods, *planned, now_period])
    last = max([*planned, now_period])
    expected_ore = round(expected_total)  # at most the cap left, which is whole öre
    maximum_ore = round(maximum)
    spans = list(periods_between(noon(first.start.date()), noon(last.start.date()), period_kind))
    coming = [p for p in spans if p >= now_period]
    planned_ore = dict(
        zip(coming, apportion([planned.get(p, 0.0) for p in coming], expected_ore), strict=True)
    )
    periods = []
    for period in spans:
        started = period <= now_period
        by_milestone = sorted(planned_by_milestone.get(period, {}).items()) if period >= now_period else []
        periods.append(
            {
                "period": period.label,
                "from": period.start.date().isoformat(),
                "to": period.last_day.isoformat(),
                "type": "Actual" if period < now_period else ("Actual and planned" if started else "Planned"),
                "actual_ore": actual_by_period.get(period.label, 0) if started else None,
                "planned_ore": planned_ore[period] if period >= now_period else None,
                "planned_by_milestone_ore": dict(
                    zip(
                        (m for m, _ in by_milestone),
                        apportion([v for _, v in by_milestone], planned_ore.get(period, 0)),
                        strict=True,
                    )
                ),
            }
        )
    ordered = sorted(milestones.values(), key=lambda m: m["milestone_id"])
    milestone_expected = apportion([m["expected"] for m in ordered], expected_ore)
    milestone_maximum = apportion(
        [m["maximum"] * (maximum / maximum_uncapped if maximum_uncapped else 0.0) for m in ordered],
        maximum_ore,
    )
    return {
        "contract_id": contract["contract_id"],
        "as_of": today.isoformat(),
        "currency": "SEK",
        "paid_net_ore": int(contract["paid_net_ore"]),
        "total_cap_ore": int(contract["total_cap_ore"]),
        "cap_left_ore": cap_left,
        "open_milestones": len(open_items),
        "participants_with_open_milestones": len(by_participant),
        "maximum_ore": maximum_ore,
        "expected_ore": expected_ore,
        "milestones": [
            {
                "milestone_id": m["milestone_id"],
                "measure_id": m["measure_id"],
                "open": m["open"],
                "maximum_ore": most,
                "expected_ore": expected,
                "observed_rates": sorted(m["rates"]),
            }
            for m, most, expected in zip(ordered, milestone_maximum, milestone_expected, strict=True)
        ],
        "periods": periods,
        "method": (
            "maximum: open prices up to the per-participant cap left, all up to the total cap left; expected: "
            "price × the observed rate of comparable episodes (measure, care type, target group; achieved among "
            "determined), under the same caps, in the period its window closes (discharge + window; still in "
            "care: after the median stay of comparable episodes)"
        ),
    }


def _parse(label: str, kind: PeriodKind) -> Period | None:
    period = parse_period(label)
    return period if period is not None and period.kind == kind else None
