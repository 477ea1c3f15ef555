"""The liability forecast: expected never above the maximum, the maximum never above what the caps leave,
the planned periods add up to the expected figure, and the rate is the comparable episodes' one."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from utfall_gateway.domain.forecast import (
    MIN_COMPARABLE,
    OpenMilestone,
    Rate,
    apportion,
    expected_close,
    forecast,
)

TODAY = date(2026, 11, 15)
MEASURES = ("planned_discharge", "no_replacement_12m", "education_or_work_12m")


def contract(paid: int = 0, per_participant: int = 200_000, total: int = 10_000_000) -> dict[str, object]:
    return {
        "contract_id": "c",
        "per_participant_cap_ore": per_participant,
        "total_cap_ore": total,
        "paid_net_ore": paid,
    }


def item(episode: str, measure: str, price: int, end: date | None = None, care: str = "hvb") -> OpenMilestone:
    return OpenMilestone(
        "p", episode, measure.replace("_", "-"), measure, price, care, "behaviour", date(2025, 1, 1), end
    )


RATES = {
    ("planned_discharge", "hvb", "behaviour"): Rate(30, 40),
    ("no_replacement_12m", "hvb", "behaviour"): Rate(10, 40),
    ("education_or_work_12m", "hvb", "behaviour"): Rate(2, 5),  # too few: the measure's overall rate
    ("education_or_work_12m", "family_home", "behaviour"): Rate(45, 60),
}


def test_expected_is_price_times_the_comparable_rate_in_the_period_the_window_closes() -> None:
    items = [
        item("e1", "planned_discharge", 50_000, end=None),
        item("e2", "no_replacement_12m", 80_000, end=date(2026, 3, 1)),
        item("e3", "education_or_work_12m", 40_000, end=date(2026, 6, 1)),
    ]
    out = forecast(
        contract(),
        items,
        {},
        RATES,
        {("hvb", "behaviour"): 200},
        {"2026-Q3": 12_000},
        period_kind="quarter",
        today=TODAY,
    )
    assert out["maximum_ore"] == 170_000
    overall = (
        47 / 65
    )  # education_or_work_12m over every comparable group (fewer than MIN_COMPARABLE in its own)
    assert 5 < MIN_COMPARABLE < 65
    assert out["expected_ore"] == round(50_000 * 0.75 + 80_000 * 0.25 + 40_000 * overall)
    by_period = {p["period"]: p for p in out["periods"]}
    assert by_period["2026-Q3"]["actual_ore"] == 12_000 and by_period["2026-Q3"]["type"] == "Actual"
    assert by_period["2026-Q4"]["planned_ore"] == round(50_000 * 0.75)  # still in care: discharge due already
    assert by_period["2027-Q1"]["planned_ore"] == round(80_000 * 0.25)  # 2026-03-01 + 12 months
    assert by_period["2026-Q4"]["type"] == "Actual and planned"
    assert expected_close(items[2], {}, TODAY) == date(2027, 6, 1)
    milestones = {m["milestone_id"]: m for m in out["milestones"]}
    assert "fewer than" in milestones["education-or-work-12m"]["observed_rates"][0]


def test_caps_bound_both_figures() -> None:
    items = [item("e1", m, 100_000, end=date(2026, 1, 1)) for m in MEASURES]
    out = forecast(
        contract(per_participant=150_000),
        items,
        {("p", "e1"): 50_000},
        RATES,
        {},
        {},
        period_kind="month",
        today=TODAY,
    )
    assert out["maximum_ore"] == 100_000  # the participant has 100 000 left under its cap
    out = forecast(contract(paid=9_990_000), items, {}, RATES, {}, {}, period_kind="quarter", today=TODAY)
    assert out["maximum_ore"] == 10_000 and out["expected_ore"] <= 10_000


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 8),
            st.sampled_from(MEASURES),
            st.integers(1, 300_000),
            st.one_of(st.none(), st.dates(date(2020, 1, 1), date(2027, 12, 31))),
            st.sampled_from(["hvb", "family_home"]),
        ),
        max_size=30,
        unique_by=lambda t: (t[0], t[1]),
    ),
    st.integers(0, 10_000_000),
    st.integers(1, 400_000),
    st.sampled_from(["month", "quarter"]),
)
def test_expected_at_most_maximum_at_most_caps_and_periods_add_up(rows, paid, per_participant, kind) -> None:  # type: ignore[no-untyped-def]
    items = [item(f"e{e}", m, price, end, care) for e, m, price, end, care in rows]
    out = forecast(
        contract(paid=paid, per_participant=per_participant),
        items,
        {},
        RATES,
        {("hvb", "behaviour"): 300},
        {},
        period_kind=kind,
        today=TODAY,
    )
    assert 0 <= out["expected_ore"] <= out["maximum_ore"] <= out["cap_left_ore"]
    per_episode: dict[str, int] = {}
    for e, _, price, _, _ in rows:
        per_episode[f"e{e}"] = per_episode.get(f"e{e}", 0) + price
    assert out["maximum_ore"] <= sum(min(per_participant, v) for v in per_episode.values()) + 1
    # every breakdown adds up to its total to the öre, and what is paid and planned stays within the cap
    planned = sum(p["planned_ore"] or 0 for p in out["periods"])
    assert planned == out["expected_ore"]
    assert out["paid_net_ore"] + planned <= out["total_cap_ore"]
    for p in out["periods"]:
        assert sum(p["planned_by_milestone_ore"].values()) == (p["planned_ore"] or 0)
    assert sum(m["expected_ore"] for m in out["milestones"]) == out["expected_ore"]
    assert sum(m["maximum_ore"] for m in out["milestones"]) == out["maximum_ore"]
    labels = [p["period"] for p in out["periods"]]
    assert labels == sorted(labels) and len(labels) == len(set(labels))


@given(st.lists(st.floats(0, 1e9, allow_nan=False), max_size=40))
def test_apportioned_parts_add_up_to_the_rounded_total_and_stay_within_an_ore(parts: list[float]) -> None:
    total = round(sum(parts))
    whole = apportion(parts, total)
    assert sum(whole) == total
    assert all(abs(w - p) < 1 for w, p in zip(whole, parts, strict=True))
