"""One suite over both contracts repositories: the in-memory fake the unit tests use and Postgres (as
eventsourcing runs one suite over every recorder), so the fake cannot drift from what the service does.

Each scenario drives `reconcile` through a backend that stores placements and facts the way the service's
consumers do; the ledgers must come out the same, entry for entry."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import asyncpg
import pytest
import pytest_asyncio

from utfall_contracts.domain.book import EpisodeKey, FactInfo
from utfall_contracts.domain.cohort import PlacementFacts
from utfall_contracts.domain.ledger import MilestoneState
from utfall_contracts.reconcile import reconcile, reconcile_contract
from utfall_contracts.repository import ContractsRepository, FactUpdate, PostgresRepository, StartedPlacement
from utfall_events.contracts import ContractDefinitionV1
from utfall_events.outcomes import EventRef
from utfall_platform.db import create_pool

from ..builders import contract_definition, milestones
from ..helpers import migrate_service, uid
from ..reference import expected_payments
from ..unit.fakes import FakeContractsRepository
from ..unit.test_contracts import placement as unit_placement

pytestmark = pytest.mark.asyncio(loop_scope="session")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
MEASURES = ("planned_discharge", "no_replacement_12m", "education_or_work_12m")
Entry = tuple[
    str, str, str, str, int, int, bool
]  # kind, payment id, episode, milestone, amount, occurrence, capped


_revisions = itertools.count(1)  # placements and facts arrive in this order: the latest counts


def started_event(
    placement: PlacementFacts, event_id: str | None = None, seconds: int | None = None
) -> StartedPlacement:
    step = next(_revisions) if seconds is None else seconds
    return StartedPlacement(
        f"provider/{placement.provider_id}",
        event_id or uid("start-"),
        NOW + timedelta(seconds=step),
        placement,
    )


def fact_update(key: EpisodeKey, measure: str, fact: FactInfo | None) -> FactUpdate:
    # a fact taken back is stored void, as measures publishes it
    stored = fact or FactInfo("void", 1, (), "v1:X", None)
    return FactUpdate(key, measure, next(_revisions), stored)


class Backend(Protocol):
    async def place(self, placement: PlacementFacts) -> None: ...
    async def place_event(self, event: StartedPlacement) -> None: ...
    async def retract(self, source: str, event_id: str, key: EpisodeKey) -> None: ...
    async def fact(self, key: EpisodeKey, measure: str, fact: FactInfo | None) -> None: ...
    async def sync(self, definition: ContractDefinitionV1, keys: Sequence[EpisodeKey]) -> None: ...
    async def amend(self, definition: ContractDefinitionV1, version: int) -> None: ...
    async def ledger(self, contract_id: str) -> list[Entry]: ...
    async def repository(self) -> ContractsRepository: ...


class FakeBackend:
    def __init__(self) -> None:
        self.repo = FakeContractsRepository()

    async def place(self, placement: PlacementFacts) -> None:
        await self.repo.store_placements([started_event(placement)])

    async def fact(self, key: EpisodeKey, measure: str, fact: FactInfo | None) -> None:
        await self.repo.store_facts([fact_update(key, measure, fact)], NOW)

    async def retract(self, source: str, event_id: str, key: EpisodeKey) -> None:
        await self.repo.store_retractions([(source, event_id)])
        await self.repo.apply_retractions([key])

    async def place_event(self, event: StartedPlacement) -> None:
        await self.repo.store_placements([event])
        await self.repo.apply_retractions([(event.facts.provider_id, event.facts.episode_id)])

    async def sync(self, definition: ContractDefinitionV1, keys: Sequence[EpisodeKey]) -> None:
        await reconcile(self.repo, {definition.contract_id: (1, definition)}, keys, now=NOW, reason="test")

    async def amend(self, definition: ContractDefinitionV1, version: int) -> None:
        await reconcile_contract(
            self.repo, definition.contract_id, version, definition, now=NOW, reason="amended"
        )

    async def ledger(self, contract_id: str) -> list[Entry]:
        return [
            (e.kind, e.payment_id, e.episode_id, e.milestone_id, e.amount_ore, e.occurrence, e.capped)
            for e in self.repo.ledger
            if e.contract_id == contract_id
        ]

    async def repository(self) -> ContractsRepository:
        return self.repo


class PostgresBackend:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def place(self, placement: PlacementFacts) -> None:
        await self.place_event(started_event(placement))

    async def place_event(self, event: StartedPlacement) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            repository = PostgresRepository(conn)
            await repository.store_placements([event])
            await repository.apply_retractions([(event.facts.provider_id, event.facts.episode_id)])

    async def fact(self, key: EpisodeKey, measure: str, fact: FactInfo | None) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await PostgresRepository(conn).store_facts([fact_update(key, measure, fact)], NOW)

    async def retract(self, source: str, event_id: str, key: EpisodeKey) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            repository = PostgresRepository(conn)
            await repository.store_retractions([(source, event_id)])
            await repository.apply_retractions([key])

    async def sync(self, definition: ContractDefinitionV1, keys: Sequence[EpisodeKey]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await reconcile(
                PostgresRepository(conn),
                {definition.contract_id: (1, definition)},
                keys,
                now=NOW,
                reason="test",
            )

    async def amend(self, definition: ContractDefinitionV1, version: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await reconcile_contract(
                PostgresRepository(conn),
                definition.contract_id,
                version,
                definition,
                now=NOW,
                reason="amended",
            )

    async def ledger(self, contract_id: str) -> list[Entry]:
        rows = await self.pool.fetch(
            "SELECT kind, payment_id, episode_id, milestone_id, amount_ore, occurrence, capped FROM contracts.ledger "
            "WHERE contract_id = $1 ORDER BY seq",
            contract_id,
        )
        return [tuple(r.values()) for r in rows]  # type: ignore[misc]

    async def repository(self) -> ContractsRepository:
        return PostgresRepository(await self.pool.acquire())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(world) -> AsyncIterator[asyncpg.Pool]:  # type: ignore[no-untyped-def]
    pool = await create_pool(world.database_url)
    await migrate_service(pool, "contracts")
    yield pool
    await pool.close()


@pytest.fixture(params=["fake", "postgres"])
def backend(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> Backend:
    return FakeBackend() if request.param == "fake" else PostgresBackend(pool)


def contract(provider: str, **overrides: Any) -> ContractDefinitionV1:
    prices = {m: p for m, p in zip(MEASURES, (100, 80, 60), strict=True)}
    caps: dict[str, Any] = {"per_participant_cap_ore": 150, "total_cap_ore": 400, **overrides}
    return contract_definition(
        uid("c-"), [provider], milestones(prices, ids={m: f"m-{m}" for m in prices}), name="suite", **caps
    )


def placement(provider: str, episode: str, **kw: Any) -> PlacementFacts:
    return unit_placement(episode, provider, **kw)


def achieved(episode: str, on: date, status: str = "achieved") -> FactInfo:
    return FactInfo(
        status, 1, (EventRef(source="provider/p", id=f"ev-{episode}"),), f"v1:{episode.upper()}", on
    )


async def test_cap_top_up_and_first_determined_first_paid(backend: Backend) -> None:
    provider = uid("p-")
    definition = contract(provider, total_cap_ore=200)
    e1, e2 = (provider, "e1"), (provider, "e2")
    for key in (e1, e2):
        await backend.place(placement(*key))
    await backend.fact(e2, "planned_discharge", achieved("e2", date(2025, 3, 1)))
    await backend.fact(e2, "no_replacement_12m", achieved("e2", date(2025, 4, 1)))
    await backend.sync(definition, [e2])
    await backend.fact(e1, "planned_discharge", achieved("e1", date(2025, 1, 1)))  # earlier, arrives later
    await backend.sync(definition, [e1])
    await backend.fact(e2, "planned_discharge", achieved("e2", date(2025, 3, 1), "not_achieved"))
    await backend.sync(definition, [e2])
    ledger = await backend.ledger(definition.contract_id)
    net: dict[tuple[str, str], int] = {}
    for kind, _, episode, milestone, amount, _, _ in ledger:
        net[(episode, milestone)] = net.get((episode, milestone), 0) + (
            amount if kind.endswith("triggered") else -amount
        )
    assert {k: v for k, v in net.items() if v} == {
        ("e1", "m-planned_discharge"): 100,
        ("e2", "m-no_replacement_12m"): 80,
    }
    assert [(k.split(".")[1], e, m.removeprefix("m-"), a) for k, _, e, m, a, _, _ in ledger] == [
        ("triggered", "e2", "no_replacement_12m", 50),  # cut by the per-participant cap (150)
        ("triggered", "e2", "planned_discharge", 100),
        ("reversed", "e2", "no_replacement_12m", 50),  # e1's earlier outcome takes the total cap's room (200)
        ("triggered", "e1", "planned_discharge", 100),
        ("reversed", "e2", "planned_discharge", 100),  # e2's discharge corrected: no longer achieved
        ("triggered", "e2", "no_replacement_12m", 80),  # room again: the cut milestone in full
    ]


async def test_repository_reads(backend: Backend) -> None:
    """What open_book, unsettled and ordered_states return after a reconciliation."""
    provider = uid("p-")
    definition = contract(provider, total_cap_ore=150, per_participant_cap_ore=1000)
    keys = [(provider, f"e{i}") for i in range(3)]
    for i, key in enumerate(keys):
        await backend.place(placement(*key))
        await backend.fact(key, "planned_discharge", achieved(key[1], date(2025, 1, 1) + timedelta(days=i)))
    await backend.sync(definition, keys)
    repo = await backend.repository()
    try:
        await repo.lock_contracts([definition.contract_id])
        book = await repo.open_book(definition.contract_id, 1, definition, keys)
        assert (book.paid_net_ore, book.entitled_total_ore) == (150, 300)
        states = {k[0][1]: (s.entitled_ore, s.active_amount_ore) for k, s in book.states.items()}
        assert states == {"e0": (100, 100), "e1": (100, 50), "e2": (100, 0)}
        unsettled = await repo.unsettled(definition.contract_id)
        assert sorted(k[0][1] for k in unsettled) == ["e1", "e2"]
        first = book.states[(keys[1], "m-planned_discharge")].order
        assert first is not None
        rows, before = await repo.ordered_states(definition.contract_id, first)
        assert sorted(k[0][1] for k in rows) == ["e1", "e2"] and before == 100
        everything, nothing_before = await repo.ordered_states(definition.contract_id, None)
        assert len(everything) == 3 and nothing_before == 0
        assert isinstance(next(iter(everything.values())), MilestoneState)
        assert sorted(await repo.contract_episodes(definition.contract_id, [provider])) == keys
    finally:
        if isinstance(repo, PostgresRepository):
            await backend.pool.release(repo.conn)  # type: ignore[attr-defined]


async def test_an_amendment_reallocates_under_a_new_total_cap(backend: Backend) -> None:
    provider = uid("p-")
    definition = contract(provider, total_cap_ore=100, per_participant_cap_ore=1000)
    keys = [(provider, "a"), (provider, "b")]
    for i, key in enumerate(keys):
        await backend.place(placement(*key))
        await backend.fact(key, "planned_discharge", achieved(key[1], date(2025, 1, 1) + timedelta(days=i)))
    await backend.sync(definition, keys)
    wider = definition.model_copy(update={"total_cap_ore": 500})
    await backend.amend(wider, 2)  # no entitlement changed; the cap did
    ledger = await backend.ledger(definition.contract_id)
    assert [(k.split(".")[1], e, a) for k, _, e, _, a, _, _ in ledger] == [
        ("triggered", "a", 100),
        ("triggered", "b", 100),
    ]


@pytest.mark.parametrize("seed", range(6))
async def test_the_same_random_history_gives_the_same_ledger_on_both(pool: asyncpg.Pool, seed: int) -> None:
    """A random history of placements, withdrawals and fact changes with caps that bind, on the fake and on
    Postgres: entry for entry the same ledger, and the net equal to tests/reference.py."""
    rng = random.Random(seed)
    provider = uid("p-")
    definition = contract(
        provider, total_cap_ore=rng.choice([150, 300, 600]), per_participant_cap_ore=rng.choice([90, 150])
    )
    episodes = [f"e{i}" for i in range(5)]
    steps: list[tuple[str, ...]] = []
    for _ in range(40):
        episode = rng.choice(episodes)
        if rng.random() < 0.15:
            steps.append(("place", episode, rng.choice(["hvb", "hvb", "family_home"])))
        else:
            steps.append(
                (
                    "fact",
                    episode,
                    rng.choice(MEASURES),
                    rng.choice(["achieved", "achieved", "not_achieved", "void"]),
                    str(rng.randrange(0, 6)),
                )
            )
    ledgers = []
    final_facts: dict[tuple[str, str, str], dict[str, Any]] = {}
    final_care: dict[str, str] = {}
    for backend in (FakeBackend(), PostgresBackend(pool)):
        for step in steps:
            key = (provider, step[1])
            if step[0] == "place":
                await backend.place(placement(provider, step[1], care_type=step[2]))
                final_care[step[1]] = step[2]
            else:
                _, episode, measure, status, day = step
                on = date(2025, 1, 1) + timedelta(days=int(day))
                await backend.fact(key, measure, None if status == "void" else achieved(episode, on, status))
                final_facts[(provider, episode, measure)] = {"status": status, "outcome_date": on}
            await backend.sync(definition, [key])
        ledgers.append(await backend.ledger(definition.contract_id))
    assert ledgers[0] == ledgers[1]
    net: dict[tuple[str, str, str], int] = {}
    for kind, _, episode, milestone, amount, _, _ in ledgers[0]:
        k = (provider, episode, milestone)
        net[k] = net.get(k, 0) + (amount if kind.endswith("triggered") else -amount)
    participants = {(provider, e): f"v1:{e.upper()}" for e, care in final_care.items() if care == "hvb"}
    want = expected_payments(definition.model_dump(mode="json"), participants, final_facts)
    assert {k: v for k, v in net.items() if v} == want


async def test_the_latest_live_placement_counts_whatever_the_order_of_retractions(backend: Backend) -> None:
    """A correction and the retraction of the placement it replaces, in either order, leave the correction;
    a retraction that arrives before its placement still takes it out."""
    provider = uid("p-")
    key = (provider, uid("e-"))
    repo = await backend.repository()
    try:
        first = started_event(placement(provider, key[1], care_type="hvb"), "s-1", seconds=1)
        corrected = started_event(placement(provider, key[1], care_type="family_home"), "s-2", seconds=2)
        await backend.place_event(corrected)
        await backend.place_event(first)
        assert (await repo.current_placements([key]))[key].care_type == "family_home"  # the later one
        await backend.retract(first.source, "s-2", key)
        assert (await repo.current_placements([key]))[key].care_type == "hvb"
        await backend.retract(first.source, "s-3", key)  # before its placement
        await backend.place_event(
            started_event(placement(provider, key[1], care_type="sis"), "s-3", seconds=3)
        )
        assert (await repo.current_placements([key]))[key].care_type == "hvb"
        await backend.retract(first.source, "s-1", key)
        assert await repo.current_placements([key]) == {}
    finally:
        if isinstance(backend, PostgresBackend):
            await backend.pool.release(repo.conn)  # type: ignore[attr-defined]


async def test_an_older_fact_revision_never_overwrites_a_newer_one(backend: Backend) -> None:
    key = (uid("p-"), uid("e-"))
    repo = await backend.repository()
    try:
        newer = FactUpdate(key, "planned_discharge", 5, achieved(key[1], date(2025, 1, 1)))
        older = FactUpdate(key, "planned_discharge", 3, achieved(key[1], date(2025, 1, 1), "not_achieved"))
        assert await repo.store_facts([newer], NOW) == {key}
        assert await repo.store_facts([older], NOW) == set()
        assert (await repo.facts([key], ["planned_discharge"]))[
            (key, "planned_discharge")
        ].status == "achieved"
    finally:
        if isinstance(backend, PostgresBackend):
            await backend.pool.release(repo.conn)  # type: ignore[attr-defined]


async def test_facts_are_read_for_the_measures_asked_for_only(backend: Backend) -> None:
    """Reconciliation reads the facts of the measures its contracts pay on, not the whole catalogue's."""
    key, other = (uid("p-"), uid("e-")), (uid("p-"), uid("e-"))
    repo = await backend.repository()
    try:
        await repo.store_facts(
            [
                FactUpdate(key, "planned_discharge", 1, achieved(key[1], date(2025, 1, 1))),
                FactUpdate(key, "no_replacement_12m", 1, achieved(key[1], date(2025, 2, 1))),
                FactUpdate(other, "planned_discharge", 1, achieved(other[1], date(2025, 1, 1))),
            ],
            NOW,
        )
        assert set(await repo.facts([key], ["planned_discharge"])) == {(key, "planned_discharge")}
        assert set(await repo.facts([key, other], ["no_replacement_12m", "planned_discharge"])) == {
            (key, "planned_discharge"),
            (key, "no_replacement_12m"),
            (other, "planned_discharge"),
        }
        assert await repo.facts([key], []) == {}
    finally:
        if isinstance(backend, PostgresBackend):
            await backend.pool.release(repo.conn)  # type: ignore[attr-defined]
