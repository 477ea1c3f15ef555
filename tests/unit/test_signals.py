"""Signals of data errors and gaming: shares with Wilson intervals, medians with distribution-free intervals,
and the ledger's reversals told apart by their reason (an outcome changed, or only a cap moved)."""

from __future__ import annotations

import statistics
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from utfall_gateway.domain.signals import (
    DEFINITIONS,
    Share,
    SignalValue,
    history_signal,
    median_signal,
    pooled,
    reversed_for_outcome,
    share_signal,
)

from .test_contracts import World, contract, placement


def test_a_share_is_scaled_with_its_interval_and_the_national_reference() -> None:
    s = share_signal("retractions_per_100_events", Share(3, 60), pooled([Share(3, 60), Share(1, 140)]))
    assert s.value == 5.0 and s.national == 2.0 and s.n == 60
    assert s.low is not None and s.high is not None and s.low < 5.0 < s.high
    empty = share_signal("followups_missing_share", Share(0, 0), Share(0, 0))
    assert empty.value is None and empty.low is None and empty.national is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=1, max_size=300))
def test_the_median_of_a_histogram_is_the_median_of_its_values_within_its_interval(values: list[int]) -> None:
    histogram: dict[int, int] = {}
    for v in values:
        histogram[v] = histogram.get(v, 0) + 1
    s = median_signal("reporting_lag_days", histogram, histogram)
    assert s.value == statistics.median(values) and s.national == s.value and s.n == len(values)
    assert s.low is not None and s.high is not None and s.low <= s.value <= s.high
    assert min(values) <= s.low and s.high <= max(values)


def test_reversals_for_caps_disputes_or_the_cohort_are_not_outcome_changes() -> None:
    definition = contract(
        milestones=[
            {"milestone_id": "stable12", "measure_id": "no_replacement_12m", "price_ore": 150_000},
            {"milestone_id": "stable24", "measure_id": "no_replacement_24m", "price_ore": 100_000},
            {"milestone_id": "school12", "measure_id": "education_or_work_12m", "price_ore": 80_000},
        ],
        per_participant_cap_ore=300_000,
        total_cap_ore=10_000_000,
    )
    w = World(definition)
    w.place(placement("e1"))
    w.outcome("e1", "no_replacement_12m", "achieved", on=date(2025, 1, 1))
    w.outcome("e1", "no_replacement_24m", "achieved", on=date(2025, 2, 1))
    w.outcome("e1", "education_or_work_12m", "achieved", on=date(2025, 3, 1))
    w.outcome("e1", "no_replacement_24m", "not_achieved", on=date(2025, 4, 1))
    reversals = [e for e in w.repo.ledger if e.kind == "payment.reversed"]
    assert [(e.milestone_id, reversed_for_outcome(e.reason)) for e in reversals] == [
        ("stable24", True),  # re-placed: the outcome changed
        ("school12", False),  # reversed only to be paid again in full as room freed under the cap
    ]
    w.withdraw(("p1", "e1"))  # the placement leaves the cohort
    left = [e for e in w.repo.ledger if e.kind == "payment.reversed"][2:]
    assert left and not any(reversed_for_outcome(e.reason) for e in left)


def test_every_signal_is_defined_in_both_languages() -> None:
    assert {d.id for d in DEFINITIONS} == {
        "retractions_per_100_events",
        "reporting_lag_days",
        "followups_missing_share",
        "changed_after_payment_share",
        "register_disagreement_share",
        "planned_discharges_share",
        "followups_near_deadline_share",
    }
    assert all(set(d.title) == set(d.definition) == {"sv", "en"} for d in DEFINITIONS)


def test_a_weighted_sample_is_reproducible_and_draws_by_weight() -> None:
    from utfall_gateway.domain.signals import SignalValue, sampling_weight, weighted_order

    above = SignalValue(id="followups_missing_share", value=40.0, low=30.0, high=50.0, n=80, national=15.0)
    within = SignalValue(id="retractions_per_100_events", value=3.0, low=1.0, high=6.0, n=90, national=2.0)
    assert sampling_weight([within]) == 1.0 and sampling_weight([above, within]) == 2.0
    assert sampling_weight([above] * 9) == 5.0  # at most four extra
    assert weighted_order("s", "p1", 2.0) == weighted_order("s", "p1", 2.0)
    # over 4,000 seeds, an item of weight 3 comes before one of weight 1 three times in four
    first = sum(
        weighted_order(f"seed-{i}", "a", 3.0) < weighted_order(f"seed-{i}", "b", 1.0) for i in range(4000)
    )
    assert 0.72 < first / 4000 < 0.78


def test_a_signal_of_change_is_the_latest_year_against_the_providers_own_earlier_years() -> None:
    own = {2022: Share(10, 50), 2023: Share(12, 50), 2024: Share(30, 40)}
    national = {2024: Share(60, 400), 2023: Share(50, 400)}
    s = history_signal("planned_discharges_share", own, national)
    assert s.year == 2024 and s.value == 75.0 and s.n == 40
    assert s.history == 22.0 and s.national == 15.0 and s.reference == 22.0
    assert s.above_reference  # 30 of 40 is far above 22 of 100
    steady = history_signal("planned_discharges_share", {2023: Share(11, 50), 2024: Share(10, 45)}, national)
    assert steady.history == 22.0 and not steady.above_reference
    first_year = history_signal("followups_near_deadline_share", {2024: Share(3, 30)}, national)
    assert first_year.history is None and first_year.reference == 15.0  # no history: the nation's
    nothing = history_signal("followups_near_deadline_share", {}, national)
    assert nothing.value is None and nothing.year is None and not nothing.above_reference


def test_the_weight_of_a_signal_of_change_is_measured_against_its_own_history() -> None:
    from utfall_gateway.domain.signals import sampling_weight

    jump = SignalValue(
        id="planned_discharges_share",
        value=75.0,
        low=60.0,
        high=85.0,
        n=40,
        national=70.0,
        year=2024,
        history=30.0,
    )
    assert sampling_weight([jump]) == 2.0  # (60 - 30) / 30 above its own habit, though near the nation's
