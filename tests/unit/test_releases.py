"""A release's tables: what they publish, and that nothing suppressed can be derived across all of them."""

from __future__ import annotations

import random
from typing import Any

from tests.attacker import published_and_relations, recovered
from utfall_events.releases import TABLES
from utfall_gateway.releases import ALL_YEARS, MeasureCounts, build, changes
from utfall_gateway.results import STRATA

COUNTS = ("achieved", "not_achieved", "missing", "pending")


def cohort(seed: int, providers: int = 6, years: range = range(2020, 2025)) -> list[dict[str, Any]]:
    """Episodes as the read model groups them: provider, year, strata, sex, care type; many small groups."""
    rng = random.Random(seed)
    out = []
    for i in range(providers):
        size = rng.choice([3, 8, 15, 40, 120])
        for year in years:
            for _ in range(rng.randint(0, size)):
                out.append(
                    {
                        "provider_id": f"p{i}",
                        "discharge_year": year,
                        "age_band": rng.choice(["13-15", "16-17"]),
                        "sex": rng.choice(["female", "male"]),
                        "legal_basis": rng.choice(["SoL", "LVU"]),
                        "target_group": rng.choice(["substance", "behaviour", "other"]),
                        "care_type": rng.choice(["hvb", "familjehem"]),
                        "status": rng.choice(["achieved", "achieved", "not_achieved", "missing", "pending"]),
                    }
                )
    return out


def group(episodes: list[dict[str, Any]], by: tuple[str, ...]) -> list[dict[str, Any]]:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in episodes:
        key = tuple(e[c] for c in by)
        r = rows.setdefault(key, {**dict(zip(by, key, strict=True)), **dict.fromkeys(COUNTS, 0)})
        r[e["status"]] += 1
    for r in rows.values():
        r["windows_closed"] = sum(r[c] for c in COUNTS)
    return list(rows.values())


def submissions(seed: int, years: list[int]) -> list[dict[str, Any]]:
    """Providers' aggregated figures per year, some small, as episodes so `group` can count them."""
    rng = random.Random(seed + 1000)
    out = []
    for i in range(3):
        for year in years:
            for _ in range(rng.choice([0, 4, 12, 30])):
                status = rng.choice(["achieved", "not_achieved", "missing"])
                out.append({"provider_id": f"r{i}", "discharge_year": year, "status": status})
    return out


def measure_counts(
    episodes: list[dict[str, Any]], reported: list[dict[str, Any]] | None = None
) -> MeasureCounts:
    years = sorted({e["discharge_year"] for e in episodes})
    reported = submissions(len(episodes), years) if reported is None else reported
    strata: dict[int | str, list[dict[str, Any]]] = {
        y: group([e for e in episodes if e["discharge_year"] == y], ("provider_id", *STRATA)) for y in years
    }
    strata[ALL_YEARS] = group(episodes, ("provider_id", *STRATA))
    by_period: dict[int | str, list[dict[str, Any]]] = {
        y: group([e for e in reported if e["discharge_year"] == y], ("provider_id",)) for y in years
    }
    by_period[ALL_YEARS] = group(reported, ("provider_id",))
    return MeasureCounts(
        "m",
        1,
        group(episodes, ("provider_id", "discharge_year")),
        strata,
        {
            dim: group(episodes, (dim, "discharge_year"))
            for dim in ("sex", "care_type", "target_group", "age_band")
        },
        reported_year=group(reported, ("provider_id", "discharge_year")),
        reported=by_period,
    )


def test_every_table_is_released_and_suppressed_cells_carry_no_number() -> None:
    release = build(measure_counts(cohort(1)), min_cell=10)
    assert set(release.tables) == set(TABLES)
    sources = {c.source for c in release.tables["provider_year"]}
    assert sources == {"events", "self_reported"}
    assert {c.source for c in release.tables["sex_year"]} == {"events"}
    for cells in release.tables.values():
        for c in cells:
            numbers = [
                v
                for k, v in c.model_dump().items()
                if k not in ("measure_version", "discharge_year")
                and v is not None
                and not isinstance(v, (bool, str))
            ]
            if c.suppressed:
                assert numbers == [], c
            else:
                assert c.closed is not None and c.closed >= 10
    assert release.suppressed > 0


def test_no_suppressed_cell_is_recoverable_across_all_tables() -> None:
    for seed in range(8):
        release = build(measure_counts(cohort(seed)), min_cell=10)
        for column in (*COUNTS, "closed"):
            published, relations = published_and_relations(
                [c for t in release.tables.values() for c in t], column
            )
            assert recovered(published, relations) == {}, (seed, column)


def test_the_attacker_breaks_table_by_table_suppression(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The control: with only each table's own primary and complementary suppression (as the live API
    applies), the same attacker recovers small cells. So the test above is not passing for want of trying."""
    from utfall_gateway import releases
    from utfall_stats.linked import LinkedSuppression

    monkeypatch.setattr(
        releases, "suppress_linked", lambda *a, **k: LinkedSuppression(frozenset(), frozenset())
    )
    found = {}
    for seed in range(8):
        tables = build(measure_counts(cohort(seed)), min_cell=10).tables
        published, relations = published_and_relations([c for t in tables.values() for c in t], "closed")
        found.update(recovered(published, relations))
    assert any(0 < value < 10 for value in found.values()), found


def test_the_views_hide_what_the_tables_hide() -> None:
    release = build(measure_counts(cohort(2)), min_cell=10)
    hidden = {(c.provider_id, c.discharge_year) for c in release.tables["provider_year"] if c.suppressed}
    for row in release.views["per_provider"]["rows"]:
        assert (row["status"] == "suppressed") == ((row["provider_id"], row["discharge_year"]) in hidden)
        if row["status"] == "suppressed":
            assert row["achieved"] is None and row["risk_adjusted"] is None and row["funnel"] is None


def test_change_list_names_what_moved() -> None:
    episodes = cohort(3)
    first = build(measure_counts(episodes), min_cell=10)
    assert changes(first.tables, first.tables) == []
    later = episodes + [{**episodes[0], "discharge_year": 2025}] * 12
    second = build(measure_counts(later), min_cell=10)
    listed = changes(first.tables, second.tables)
    added = {(c.table, tuple(sorted(c.key.items()))) for c in listed if c.change == "added"}
    assert ("national_year", (("discharge_year", 2025), ("source", "events"))) in added
    changed = [c for c in listed if c.change == "changed" and c.table == "national_all_years"]
    assert changed and "closed" in changed[0].fields
