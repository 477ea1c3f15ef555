"""The gateway's comparison is a pure computation over fetched counts, cached once per comparison and reader
scope whichever route or page asks (issue 17, item 3)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from utfall_gateway import results_service as views
from utfall_gateway.auth import PUBLIC, Principal
from utfall_gateway.cache import TtlCache
from utfall_gateway.domain.results import compare, comparison_query, self_reported_fit
from utfall_gateway.readmodel import results as results_read


def stratum(
    provider: str, achieved: int, not_achieved: int, *, age: str = "16-17", open_windows: int = 0
) -> dict[str, Any]:
    return {
        "provider_id": provider,
        "age_band": age,
        "sex": "F",
        "legal_basis": "SoL",
        "target_group": "youth",
        "achieved": achieved,
        "not_achieved": not_achieved,
        "missing": 0,
        "pending": 0,
        "windows_closed": achieved + not_achieved - open_windows,
    }


ROWS = [stratum("big-a", 50, 10), stratum("big-b", 20, 20), stratum("tiny", 2, 1)]


def test_compare_suppresses_small_providers_and_adjusts_the_rest() -> None:
    q = comparison_query("planned_discharge", 2025, {})
    out = compare(ROWS, [], {"big-a": 2}, q, principal=PUBLIC, min_cell=10)
    by_provider = {p["provider_id"]: p for p in out["providers"]}
    assert by_provider["big-a"]["status"] == "ok" and by_provider["big-a"]["achieved"] == 50
    assert by_provider["big-a"]["data_errors"] == 2 and by_provider["big-b"]["data_errors"] == 0
    assert by_provider["big-a"]["risk_adjusted"]["observed"] == 50
    assert by_provider["tiny"]["status"] == "suppressed" and by_provider["tiny"]["achieved"] is None
    # complementary suppression: one hidden cell would follow from the total, so a second one is hidden too
    hidden = [p for p in out["providers"] if p["status"] == "suppressed"]
    assert len(hidden) >= 2 or out["total"]["status"] == "suppressed"
    own = compare(ROWS, [], {}, q, principal=Principal("provider", provider_id="tiny"), min_cell=10)
    assert {p["provider_id"]: p for p in own["providers"]}["tiny"]["achieved"] == 2  # its own, exactly


def test_a_comparison_over_all_years_takes_yearly_submissions() -> None:
    q = comparison_query("planned_discharge", None, {"care_type": "hvb"})
    assert q.period_columns == ()
    fit = self_reported_fit(q)
    assert fit is not None and "care_type IS NOT NULL" in fit and "discharge_quarter IS NULL" in fit
    assert (
        self_reported_fit(comparison_query("planned_discharge", None, {"municipality_code": "0180"})) is None
    )


@pytest.mark.asyncio
async def test_one_cache_entry_per_comparison_and_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []

    async def strata(pool: Any, q: Any) -> list[dict[str, Any]]:
        fetched.append(q.measure_id)
        return ROWS

    async def nothing(*_: Any) -> Any:
        return []

    async def no_errors(pool: Any) -> dict[str, int]:
        return {}

    async def no_catalogue(pool: Any) -> list[dict[str, Any]]:
        return []

    monkeypatch.setattr(results_read, "catalogue", no_catalogue)
    monkeypatch.setattr(results_read, "comparison_strata", strata)
    monkeypatch.setattr(results_read, "self_reported_counts", nothing)
    monkeypatch.setattr(results_read, "data_errors_by_provider", no_errors)
    gw: Any = SimpleNamespace(pool=None, cache=TtlCache(60), min_cell=10)
    first = await views.live_comparison(
        gw, "planned_discharge", year=2025, filters={}, principal=Principal("provider", provider_id="tiny")
    )
    again = await views.live_comparison(
        gw, "planned_discharge", year=2025, filters={}, principal=Principal("provider", provider_id="tiny")
    )
    assert first == again and fetched == ["planned_discharge"]
    await views.comparison(gw, "planned_discharge", year=2025, filters={}, principal=Principal("operator"))
    assert fetched == ["planned_discharge", "planned_discharge"]  # another scope, another answer


def test_a_cohort_with_open_windows_is_preliminary_and_has_no_rate() -> None:
    """Right-censoring: big-b has 5 of its 40 episodes still inside their window. Its re-placements so far
    count as not achieved, its successes are not known yet: no rate, no O/E, no funnel label, but the share
    of windows closed; and the national total, which holds big-b's members, is preliminary too."""
    rows = [stratum("big-a", 50, 10), stratum("big-b", 20, 20, open_windows=5), stratum("big-c", 30, 30)]
    out = compare(
        rows, [], {}, comparison_query("no_replacement_24m", 2025, {}), principal=PUBLIC, min_cell=10
    )
    by_provider = {p["provider_id"]: p for p in out["providers"]}
    b = by_provider["big-b"]
    assert b["result"] == "preliminary" and b["windows_closed_share"] == pytest.approx(35 / 40)
    assert (
        b["observed_rate"] is None
        and b["ci_low"] is None
        and b["risk_adjusted"] is None
        and b["funnel"] is None
    )
    assert b["achieved"] == 20  # the counts so far stay visible
    a = by_provider["big-a"]
    assert a["result"] == "final" and a["observed_rate"] == pytest.approx(50 / 60) and a["risk_adjusted"]
    assert out["total"]["result"] == "preliminary" and out["total"]["observed_rate"] is None
    assert out["funnel"] is None  # no final national rate to judge against


def test_final_providers_are_labelled_against_the_national_rate() -> None:
    rows = [stratum("high", 90, 10), stratum("mid", 50, 50), stratum("low", 10, 90), stratum("mid2", 52, 48)]
    out = compare(
        rows, [], {}, comparison_query("planned_discharge", 2025, {}), principal=PUBLIC, min_cell=10
    )
    labels = {p["provider_id"]: (p["funnel"] or {}).get("label") for p in out["providers"]}
    funnel = out["funnel"]
    assert funnel is not None and funnel["target"] == pytest.approx(202 / 400)
    if funnel["method"] == "none":
        assert labels == {"high": "higher", "mid": "no_different", "low": "lower", "mid2": "no_different"}
    else:  # widened for overdispersion: the extremes may fall inside, the middle never outside
        assert labels["mid"] == labels["mid2"] == "no_different"
    assert funnel["curve"][0]["n"] == 1 and all(
        c["low_95"] <= funnel["target"] <= c["high_95"] for c in funnel["curve"]
    )
