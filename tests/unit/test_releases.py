"""A release's tables: what they publish, and that no suppressed cell can be narrowed below the protection
margin by a reader holding every release, the registry and one provider's own figures (an independent
LP attacker, `tests.attacker.IntervalAttacker`); with the audit switched off the same attacker does narrow
cells (the control)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from tests.attacker import IntervalAttacker, OwnFigures
from utfall_events.releases import TABLES
from utfall_gateway.domain import releases as releases_module
from utfall_gateway.domain.releases import Earlier, MeasureCounts, build, changes, snapshot_of
from utfall_gateway.domain.results import STRATA

pytestmark = pytest.mark.unit
COUNTS = ("achieved", "not_achieved", "missing", "pending")
FINE = ("provider_id", "sex", "age_band", "target_group", "legal_basis", "discharge_year")
MIN_CELL = MARGIN = 10


def cohort(seed: int, providers: int = 6, years: range = range(2020, 2025)) -> list[dict[str, Any]]:
    """Episodes as the read model groups them: provider, year, strata; many small groups. Each episode has
    an outcome per measure (`m0`, `m1`, `m2`); the last year's windows are still open for `m2`."""
    rng = random.Random(seed)
    out = []
    for i in range(providers):
        size = rng.choice([3, 8, 15, 40, 120])
        for year in years:
            for _ in range(rng.randint(0, size)):
                outcome = {}
                for m in ("m0", "m1", "m2"):
                    if m == "m2" and year == years[-1] and rng.random() < 0.6:
                        outcome[m] = "pending"
                    else:
                        outcome[m] = rng.choice(["achieved", "achieved", "not_achieved", "missing"])
                out.append(
                    {
                        "provider_id": f"p{i}",
                        "discharge_year": year,
                        "age_band": rng.choice(["13-15", "16-17"]),
                        "sex": rng.choice(["female", "male"]),
                        "legal_basis": rng.choice(["SoL", "LVU"]),
                        "target_group": rng.choice(["substance_use", "behaviour", "other"]),
                        "outcome": outcome,
                    }
                )
    return out


def group(episodes: list[dict[str, Any]], by: tuple[str, ...], measure: str) -> list[dict[str, Any]]:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in episodes:
        key = tuple(e[c] for c in by)
        r = rows.setdefault(key, {**dict(zip(by, key, strict=True)), **dict.fromkeys(COUNTS, 0)})
        r[e["outcome"][measure] if "outcome" in e else e["status"]] += 1
    for r in rows.values():
        r["windows_closed"] = r["achieved"] + r["not_achieved"] + r["missing"]  # pending: window open
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


def measure_counts(episodes: list[dict[str, Any]], seed: int = 0) -> list[MeasureCounts]:
    years = sorted({e["discharge_year"] for e in episodes})
    out = []
    for measure in ("m0", "m1", "m2"):
        reported = submissions(seed, years) if measure == "m0" else []
        by_period: dict[int, list[dict[str, Any]]] = {
            y: group([e for e in reported if e["discharge_year"] == y], ("provider_id",), measure)
            for y in years
        }
        out.append(
            MeasureCounts(
                measure,
                1,
                group(episodes, FINE, measure),
                reported_year=group(reported, ("provider_id", "discharge_year"), measure),
                reported=by_period,
            )
        )
    return out


def own_figures(provider: str, counts: Sequence[MeasureCounts]) -> OwnFigures:
    own = OwnFigures(provider)
    for c in counts:
        for r in c.fine:
            if r["provider_id"] != provider:
                continue
            year = own.years.setdefault((c.measure_id, r["discharge_year"]), dict.fromkeys(COUNTS, 0))
            for k in COUNTS:
                year[k] += r[k]
            for dim in ("sex", "age_band", "target_group"):
                share = own.shares.setdefault(
                    (c.measure_id, dim, r[dim], r["discharge_year"]), dict.fromkeys(COUNTS, 0)
                )
                for k in COUNTS:
                    share[k] += r[k]
    return own


def open_data(release: Any) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json") for m in release.measures for t in m.tables.values() for c in t]


def sizes(counts: Sequence[MeasureCounts]) -> dict[tuple[Any, ...], int]:
    """Every cell's true number of episodes, by its key in the open data."""
    out: dict[tuple[Any, ...], int] = {}

    def add(key: tuple[Any, ...], n: int) -> None:
        out[key] = out.get(key, 0) + n

    for c in counts:
        for source, rows in (("events", c.fine), ("self_reported", c.reported_year)):
            for r in rows:
                n = sum(int(r.get(k) or 0) for k in COUNTS)
                m, p, y = c.measure_id, r["provider_id"], r["discharge_year"]
                add((m, source, "provider_year", p, y), n)
                add((m, source, "national_year", y), n)
                if source == "events":
                    for dim in ("sex", "age_band", "target_group"):
                        add((m, source, f"{dim}_year", r[dim], y), n)
    return out


def attack(
    published: dict[int, list[dict[str, Any]]],
    counts: dict[int, Sequence[MeasureCounts]],
    providers: Sequence[str],
) -> list[Any]:
    """Every bound the public and each provider (knowing its own figures) get on a small cell (fewer than
    MIN_CELL episodes in fact: the cells suppression protects; complementary cells may be recovered)."""
    true = {n: sizes(c) for n, c in counts.items()}

    def small(number: int, key: tuple[Any, ...]) -> bool:
        return true[number][key] < MIN_CELL

    bounds = IntervalAttacker(published).bounds(small)
    for provider in providers:
        own = {n: own_figures(provider, c) for n, c in counts.items()}
        bounds += IntervalAttacker(published, own=own).bounds(small)
    return bounds


def test_every_table_is_released_and_suppressed_cells_carry_no_number() -> None:
    release = build(measure_counts(cohort(1)), release=1, min_cell=MIN_CELL, margin=MARGIN)
    tables = release.measures[0].tables
    assert set(tables) == set(TABLES)
    assert {c.source for c in tables["provider_year"]} == {"events", "self_reported"}
    assert {c.source for c in tables["sex_year"]} == {"events"}
    preliminary = 0
    for measure in release.measures:
        for cells in measure.tables.values():
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
                    continue
                assert c.episodes is not None and c.episodes >= MIN_CELL, c
                if c.result == "preliminary":  # its size and share closed, not its outcomes so far
                    preliminary += 1
                    assert (
                        c.achieved is None
                        and c.pending is None
                        and c.closed is None
                        and c.observed_rate is None
                    )
                    assert c.windows_closed_share is not None
                else:
                    assert c.closed == c.episodes
    assert preliminary > 0
    assert sum(m.suppressed for m in release.measures) > 0
    assert release.audit.figures["narrowest_interval"] >= MARGIN


@pytest.mark.parametrize("seed", range(4))
def test_no_suppressed_cell_narrows_below_the_margin_for_any_reader(seed: int) -> None:
    counts = measure_counts(cohort(seed), seed)
    release = build(counts, release=1, min_cell=MIN_CELL, margin=MARGIN)
    bounds = attack({1: open_data(release)}, {1: counts}, [f"p{i}" for i in range(6)])
    assert bounds
    narrow = [b for b in bounds if b.width < MARGIN]
    assert narrow == [], narrow[:5]


def test_the_attacker_narrows_cells_when_the_audit_is_off(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The control: with suppression that only stops exact recovery (primary cells and complementary cells
    until no cell follows by subtraction, per measure, as releases did before the audit), the same attacker
    narrows small cells below the margin. So the tests above do not pass for want of trying."""
    from utfall_gateway.domain import disclosure

    monkeypatch.setattr(disclosure, "protect", lambda tables, exact, *, hidden, **_: _Protection(hidden))
    narrow = []
    for seed in range(4):
        counts = measure_counts(cohort(seed), seed)
        release = build(counts, release=1, min_cell=MIN_CELL, margin=MARGIN)
        narrow += [b for b in attack({1: open_data(release)}, {1: counts}, ["p0", "p1"]) if b.width < MARGIN]
    assert narrow, "the attacker found nothing: it is not testing anything"


class _Protection:
    def __init__(self, hidden: Any) -> None:
        self.hidden = frozenset(hidden)
        self.findings = ()
        self.rounds = 0


def test_two_releases_together_leave_every_small_cell_protected() -> None:
    """A second release after new data: the years that did not change are the same unknowns in both, and the
    attacker holds both. Each release alone and both together keep every small cell wide."""
    episodes = cohort(5)
    first_counts = measure_counts(episodes, 5)
    first = build(first_counts, release=1, min_cell=MIN_CELL, margin=MARGIN)
    later = episodes + [{**episodes[0], "discharge_year": 2024, "provider_id": "p0"}] * 3
    second_counts = measure_counts(later, 5)
    earlier = [
        Earlier(snapshot_of(first.audit), [c for m in first.measures for t in m.tables.values() for c in t])
    ]
    second = build(second_counts, release=2, min_cell=MIN_CELL, margin=MARGIN, earlier=earlier)
    published = {1: open_data(first), 2: open_data(second)}
    bounds = attack(published, {1: first_counts, 2: second_counts}, [f"p{i}" for i in range(6)])
    assert {b.release for b in bounds} == {1, 2}
    narrow = [b for b in bounds if b.width < MARGIN]
    assert narrow == [], narrow[:5]
    # an unchanged year keeps its answer: a cell hidden in the first release and unchanged is hidden again
    hidden_first = {
        (c.provider_id, c.discharge_year)
        for c in first.measures[0].tables["provider_year"]
        if c.suppressed and c.source == "events"
    }
    hidden_second = {
        (c.provider_id, c.discharge_year)
        for c in second.measures[0].tables["provider_year"]
        if c.suppressed and c.source == "events"
    }
    assert {h for h in hidden_first if h[1] != 2024} <= hidden_second


def test_the_views_hide_what_the_tables_hide() -> None:
    release = build(measure_counts(cohort(2)), release=1, min_cell=MIN_CELL, margin=MARGIN)
    for measure in release.measures:
        hidden = {
            (c.provider_id, c.discharge_year)
            for c in measure.tables["provider_year"]
            if c.suppressed and c.source == "events"
        }
        for row in measure.views["per_provider"]["rows"]:
            if row["source"] != "events":
                continue
            assert (row["status"] == "suppressed") == ((row["provider_id"], row["discharge_year"]) in hidden)
            if row["status"] == "suppressed":
                assert row["achieved"] is None and row["risk_adjusted"] is None and row["funnel"] is None
                assert row["episodes"] is None
    # an event-based cell hidden in one measure is hidden in every measure (each shows its episodes)
    keys = [
        {
            (c.table, c.provider_id, c.breakdown_value, c.discharge_year)
            for t in m.tables.values()
            for c in t
            if c.suppressed and c.source == "events"
        }
        for m in release.measures
    ]
    assert keys[0] == keys[1] == keys[2]


def test_change_list_names_what_moved() -> None:
    episodes = cohort(3)
    first = build(measure_counts(episodes), release=1, min_cell=MIN_CELL, margin=MARGIN).measures[0]
    assert changes(first.tables, first.tables) == []
    later = episodes + [{**episodes[0], "discharge_year": 2025}] * 12
    second = build(measure_counts(later), release=2, min_cell=MIN_CELL, margin=MARGIN).measures[0]
    listed = changes(first.tables, second.tables)
    added = {(c.table, tuple(sorted(c.key.items()))) for c in listed if c.change == "added"}
    assert ("national_year", (("discharge_year", 2025), ("source", "events"))) in added
    year = episodes[0]["discharge_year"]
    third = build(measure_counts(later + [{**episodes[0]}] * 3), release=3, min_cell=MIN_CELL, margin=MARGIN)
    moved = changes(second.tables, third.measures[0].tables)
    changed = [
        c
        for c in moved
        if c.change == "changed" and c.table == "national_year" and c.key["discharge_year"] == year
    ]
    assert changed and "episodes" in changed[0].fields


def test_strata_come_from_the_fine_counts() -> None:
    counts = measure_counts(cohort(1))[0]
    year = counts.years()[0]
    rows = counts.grouped(("provider_id", *STRATA), year)
    assert sum(r["achieved"] for r in rows) == sum(
        r["achieved"] for r in counts.fine if r["discharge_year"] == year
    )
    assert releases_module.SOURCES == ("events", "self_reported")


def with_verified(episodes: list[dict[str, Any]], seed: int) -> list[MeasureCounts]:
    """The cohort's counts with `m1`'s verified counterpart (`m1@register`) beside them: the same episodes and
    windows, some outcomes contradicted, some excluded, some not covered by a register (unverified). Counted
    as the read model counts it: excluded where others count missing, unverified where they count pending."""
    rng = random.Random(seed + 7)
    verified = []
    for e in episodes:
        reported = e["outcome"]["m1"]
        status = rng.choices(
            [reported, "not_achieved", "missing", "pending"], weights=[0.7, 0.1, 0.05, 0.15]
        )[0]
        verified.append({**e, "outcome": {**e["outcome"], "m1@register": status}})
    counts = measure_counts(episodes, seed)
    windows = {tuple(r[c] for c in FINE): r["windows_closed"] for r in group(episodes, FINE, "m1")}
    fine = group(verified, FINE, "m1@register")
    for r in fine:
        r["windows_closed"] = windows[tuple(r[c] for c in FINE)]  # the same episodes' windows as m1's
    return [*counts, MeasureCounts("m1@register", 1, fine)]


@pytest.mark.parametrize("seed", range(3))
def test_a_verified_measure_is_released_in_its_own_words_and_protected_with_the_rest(seed: int) -> None:
    """Issue 31 item 2: verified results are released beside the reported ones (`<id>@register`, source
    `verified`, counted achieved, not achieved, excluded and unverified), under the same audit: the attacker
    holding both the reported and the verified tables, and a provider's own figures, narrows no small cell."""
    counts = with_verified(cohort(seed), seed)
    release = build(counts, release=1, min_cell=MIN_CELL, margin=MARGIN)
    verified = next(m for m in release.measures if m.tables["provider_year"][0].measure_id == "m1@register")
    cells = [c for t in verified.tables.values() for c in t]
    assert cells and {c.source for c in cells} == {"verified"}
    shown = [c for c in cells if not c.suppressed and c.result == "final"]
    assert shown and all(c.missing is None and c.pending is None and c.itt_rate is None for c in shown)
    assert any(c.excluded for c in shown) and any(c.unverified for c in shown)
    for c in shown:
        assert c.episodes == c.achieved + c.not_achieved + c.excluded + c.unverified  # type: ignore[operator]
        assert c.closed == c.achieved + c.not_achieved + c.excluded  # type: ignore[operator]
    assert any(c.suppressed for c in cells)
    bounds = attack({1: open_data(release)}, {1: counts}, [f"p{i}" for i in range(6)])
    assert any(b.cell[0] == "m1@register" for b in bounds)
    narrow = [b for b in bounds if b.width < MARGIN]
    assert narrow == [], narrow[:5]
    # the next release reads this one's open data back in the audit's terms
    everything = [c for m in release.measures for t in m.tables.values() for c in t]
    again = build(
        counts,
        release=2,
        min_cell=MIN_CELL,
        margin=MARGIN,
        earlier=[Earlier(snapshot_of(release.audit), everything)],
    )
    assert {
        (c.provider_id, c.discharge_year) for c in cells if c.suppressed and c.table == "provider_year"
    } <= {
        (c.provider_id, c.discharge_year)
        for m in again.measures
        for c in m.tables["provider_year"]
        if c.measure_id == "m1@register" and c.suppressed
    }
