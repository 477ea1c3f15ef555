"""Contracts: cohort rules, caps (per participant, total, both), reversal after a retraction, re-trigger after
the reversal is itself undone, blocked payments paid when room frees up, amendments; and a property test
over permutations that no arrival order ever pays past a cap or pays a payment id twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utfall_contracts.domain.book import FactInfo
from utfall_contracts.domain.cohort import PlacementFacts, enrols
from utfall_contracts.domain.ledger import PAYMENT_NAMESPACE, payment_id
from utfall_contracts.reconcile import reconcile
from utfall_events.contracts import ContractDefinitionV1
from utfall_events.outcomes import EventRef

from ..builders import contract_definition, milestones
from .fakes import FakeContractsRepository

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def contract(**overrides: Any) -> ContractDefinitionV1:
    values: dict[str, Any] = {
        "per_participant_cap_ore": 250,
        "total_cap_ore": 1000,
        "enrolment": ("2024-01-01", "2025-12-31"),
        "ages": (13, 20),
        "target_groups": [],
        "legal_bases": [],
        "municipalities": [],
    }
    values.update(overrides)
    contract_id = values.pop("contract_id", "c1")
    providers = values.pop("provider_ids", ["p1", "p2"])
    prices = values.pop("milestones", UNIT_MILESTONES)
    return contract_definition(contract_id, providers, prices, **values)


UNIT_MILESTONES = milestones(
    {"planned_discharge": 100, "no_replacement_12m": 100, "education_or_work_12m": 100},
    ids={"planned_discharge": "m1", "no_replacement_12m": "m2", "education_or_work_12m": "m3"},
)


def placement(episode: str, provider: str = "p1", **kw: object) -> PlacementFacts:
    values: dict[str, object] = {
        "provider_id": provider,
        "episode_id": episode,
        "subject_ref": f"v1:{episode.upper()}",
        "municipality_code": "0180",
        "care_type": "hvb",
        "legal_basis": "SoL",
        "target_group": "behaviour",
        "age_at_start": 15,
        "start_date": date(2024, 5, 1),
    }
    values.update(kw)
    return PlacementFacts(**values)  # type: ignore[arg-type]


def fact(status: str, episode: str, on: date | None = None) -> FactInfo:
    return FactInfo(
        status, 1, (EventRef(source="provider/p1", id=f"ev-{episode}"),), f"v1:{episode.upper()}", on
    )


class World:
    def __init__(self, definition: ContractDefinitionV1 | None = None) -> None:
        self.repo = FakeContractsRepository()
        self.contracts = {"c1": (1, definition or contract())}
        self.day = 0

    def place(self, p: PlacementFacts) -> None:
        self.repo.placements[(p.provider_id, p.episode_id)] = p
        self.sync([(p.provider_id, p.episode_id)])

    def withdraw(self, key: tuple[str, str]) -> None:
        del self.repo.placements[key]
        self.sync([key])

    def outcome(
        self, episode: str, measure: str, status: str, provider: str = "p1", on: date | None = None
    ) -> None:
        """By default each outcome is determined a day after the one before, so arrival and determination
        agree; `on` sets the outcome date."""
        key = (provider, episode)
        self.day += 1
        if status == "void":
            self.repo.fact_status.pop((key, measure), None)
        else:
            when = on or date(2025, 1, 1) + timedelta(days=self.day)
            self.repo.fact_status[(key, measure)] = fact(status, episode, when)
        self.sync([key])

    def sync(self, keys: list[tuple[str, str]]) -> None:
        asyncio.run(reconcile(self.repo, self.contracts, keys, now=NOW, reason="test"))

    def net(self) -> int:
        return sum(e.amount_ore if e.kind == "payment.triggered" else -e.amount_ore for e in self.repo.ledger)

    def kinds(self) -> list[tuple[str, int]]:
        return [(e.kind.split(".")[1], e.amount_ore) for e in self.repo.ledger]


@pytest.mark.parametrize(
    ("change", "enrolled"),
    [
        ({}, True),
        ({"provider_id": "p9"}, False),
        ({"care_type": "family_home"}, False),
        ({"age_at_start": 12}, False),
        ({"age_at_start": 20}, True),
        ({"start_date": date(2023, 12, 31)}, False),
        ({"start_date": date(2025, 12, 31)}, True),
    ],
)
def test_cohort_rule(change: dict[str, object], enrolled: bool) -> None:
    assert enrols(contract(), placement("e1", **change)) is enrolled


def test_cohort_lists_restrict_only_when_given() -> None:
    narrow = contract(
        target_groups=["substance_use"], legal_bases=["LVU"], municipalities=["1480"], ages=(0, 20)
    )
    assert not enrols(narrow, placement("e1"))
    assert enrols(
        narrow, placement("e1", target_group="substance_use", legal_basis="LVU", municipality_code="1480")
    )


def test_achieved_pays_once_with_a_deterministic_id_and_evidence() -> None:
    w = World()
    w.place(placement("e1"))
    w.outcome("e1", "planned_discharge", "achieved")
    w.sync([("p1", "e1")])  # redelivery: nothing new
    assert w.kinds() == [("triggered", 100)]
    entry = w.repo.ledger[0]
    assert entry.payment_id == str(uuid.uuid5(PAYMENT_NAMESPACE, "c1|v1:E1|p1/e1|m1"))
    assert entry.evidence == [EventRef(source="provider/p1", id="ev-e1")] and entry.contract_version == 1


def test_outcome_before_enrolment_pays_when_the_placement_arrives() -> None:
    w = World()
    w.repo.fact_status[(("p1", "e1"), "planned_discharge")] = fact("achieved", "e1")
    w.sync([("p1", "e1")])
    assert w.kinds() == []
    w.place(placement("e1"))
    assert w.kinds() == [("triggered", 100)]


def test_per_participant_cap_cuts_then_stops() -> None:
    w = World()
    w.place(placement("e1"))
    for measure in ("planned_discharge", "no_replacement_12m", "education_or_work_12m"):
        w.outcome("e1", measure, "achieved")
    assert w.kinds() == [("triggered", 100), ("triggered", 100), ("triggered", 50)]
    assert w.repo.ledger[-1].capped


def test_total_cap_cuts_then_blocks() -> None:
    w = World(contract(total_cap_ore=150))
    for e in ("e1", "e2", "e3"):
        w.place(placement(e))
        w.outcome(e, "planned_discharge", "achieved")
    assert w.kinds() == [("triggered", 100), ("triggered", 50)]
    assert w.net() == 150


def test_both_caps_at_once() -> None:
    w = World(contract(total_cap_ore=300, per_participant_cap_ore=150))
    for e in ("e1", "e2"):
        w.place(placement(e))
        w.outcome(e, "planned_discharge", "achieved")
        w.outcome(e, "no_replacement_12m", "achieved")
    assert w.kinds() == [("triggered", 100), ("triggered", 50), ("triggered", 100), ("triggered", 50)]
    w.place(placement("e3"))
    w.outcome("e3", "planned_discharge", "achieved")
    assert w.net() == 300 and len(w.repo.ledger) == 4


def test_reversal_after_retraction_takes_back_what_was_paid() -> None:
    w = World(contract(total_cap_ore=150))
    w.place(placement("e1"))
    w.place(placement("e2"))
    w.outcome("e1", "planned_discharge", "achieved")
    w.outcome("e2", "planned_discharge", "achieved")  # cut to 50
    w.outcome("e2", "planned_discharge", "void")  # the ended event was retracted
    assert w.kinds() == [("triggered", 100), ("triggered", 50), ("reversed", 50)]
    assert w.repo.ledger[2].payment_id == w.repo.ledger[1].payment_id


def test_retrigger_after_the_reversal_is_itself_undone_gets_a_new_payment_id() -> None:
    w = World()
    w.place(placement("e1"))
    w.outcome("e1", "planned_discharge", "achieved")
    w.outcome("e1", "planned_discharge", "not_achieved")  # correction: unplanned after all
    w.outcome("e1", "planned_discharge", "achieved")  # the correction was retracted
    assert w.kinds() == [("triggered", 100), ("reversed", 100), ("triggered", 100)]
    first, _, again = w.repo.ledger
    assert again.payment_id == payment_id("c1", "v1:E1", "p1", "e1", "m1", 2) != first.payment_id
    assert again.occurrence == 2


def test_total_cap_pays_first_determined_first_whatever_arrives_first() -> None:
    """Under a binding total cap the outcome determined first is paid: a late-arriving earlier outcome takes
    the room back from a later one (reversed in full, paid again for what is left)."""
    w = World(contract(total_cap_ore=150))
    for e in ("e1", "e2"):
        w.place(placement(e))
    w.outcome("e2", "planned_discharge", "achieved", on=date(2025, 3, 1))
    w.outcome("e1", "planned_discharge", "achieved", on=date(2025, 2, 1))
    assert w.kinds() == [("triggered", 100), ("reversed", 100), ("triggered", 50), ("triggered", 100)]
    assert w.net() == 150
    net = {e: 0 for e in ("e1", "e2")}
    for entry in w.repo.ledger:
        net[entry.episode_id] += entry.amount_ore if entry.kind == "payment.triggered" else -entry.amount_ore
    assert net == {"e1": 100, "e2": 50}
    assert "first determined, first paid" not in (w.repo.ledger[1].reason or "")  # cut, not taken
    assert "cap" in (w.repo.ledger[1].reason or "")


def test_a_milestone_cut_by_the_participant_cap_is_topped_up_when_a_reversal_frees_room() -> None:
    """The issue's case: cap 300,000; 150,000 + 100,000 paid, 80,000 cut to 50,000; then the 100,000 is
    reversed (a re-placement): the cut milestone is paid again in full."""
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
    assert w.kinds() == [("triggered", 150_000), ("triggered", 100_000), ("triggered", 50_000)]
    w.outcome("e1", "no_replacement_24m", "not_achieved", on=date(2025, 4, 1))
    assert w.kinds()[3:] == [("reversed", 100_000), ("reversed", 50_000), ("triggered", 80_000)]
    assert w.net() == 230_000
    top_up = w.repo.ledger[-1]
    assert top_up.occurrence == 2 and not top_up.capped and "replaces payment" in (top_up.reason or "")


def test_blocked_milestone_is_paid_when_a_reversal_frees_room() -> None:
    w = World(contract(total_cap_ore=100))
    w.place(placement("e1"))
    w.place(placement("e2"))
    w.outcome("e1", "planned_discharge", "achieved")
    w.outcome("e2", "planned_discharge", "achieved")  # blocked: cap used
    assert w.kinds() == [("triggered", 100)]
    w.outcome("e1", "planned_discharge", "void")
    assert w.kinds() == [("triggered", 100), ("reversed", 100), ("triggered", 100)]
    assert w.repo.ledger[-1].episode_id == "e2"


def test_leaving_the_cohort_reverses_and_rejoining_pays_again() -> None:
    w = World()
    w.place(placement("e1"))
    w.outcome("e1", "planned_discharge", "achieved")
    w.withdraw(("p1", "e1"))  # placement.started retracted
    w.place(placement("e1", care_type="family_home"))  # corrected: outside the cohort
    assert w.kinds() == [("triggered", 100), ("reversed", 100)]
    assert w.repo.people[("c1", ("p1", "e1"))][0] == "withdrawn"
    w.place(placement("e1"))
    assert w.kinds()[-1] == ("triggered", 100)


def test_amendment_applies_to_new_payments_and_names_its_version() -> None:
    w = World()
    w.place(placement("e1"))
    w.outcome("e1", "planned_discharge", "achieved")
    amended = contract(
        milestones=[
            {"milestone_id": "m1", "measure_id": "planned_discharge", "price_ore": 100},
            {"milestone_id": "m4", "measure_id": "less_intensive_after", "price_ore": 70},
        ]
    )
    w.contracts = {"c1": (2, amended)}
    w.repo.fact_status[(("p1", "e1"), "less_intensive_after")] = fact("achieved", "e1")
    w.sync([("p1", "e1")])
    assert w.kinds() == [("triggered", 100), ("triggered", 70)]
    assert [e.contract_version for e in w.repo.ledger] == [1, 2]


EPISODES = ["e1", "e2", "e3", "e4"]
MEASURES = ["planned_discharge", "no_replacement_12m", "education_or_work_12m"]
updates = st.lists(
    st.tuples(
        st.sampled_from(EPISODES),
        st.sampled_from(MEASURES),
        st.sampled_from(["achieved", "achieved", "not_achieved", "void", "pending"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(sequence=updates, data=st.data(), pp_cap=st.integers(50, 300), total_cap=st.integers(50, 800))
def test_no_arrival_order_pays_past_a_cap_or_twice(
    sequence: list[tuple[str, str, str]], data: st.DataObject, pp_cap: int, total_cap: int
) -> None:
    order = data.draw(st.permutations(sequence))
    w = World(contract(per_participant_cap_ore=pp_cap, total_cap_ore=total_cap))
    for e in EPISODES:
        w.place(placement(e))
    for episode, measure, status in order:
        w.outcome(episode, measure, status)
        assert 0 <= w.net() <= total_cap
        per_person: dict[str, int] = {}
        for entry in w.repo.ledger:
            sign = 1 if entry.kind == "payment.triggered" else -1
            per_person[entry.episode_id] = per_person.get(entry.episode_id, 0) + sign * entry.amount_ore
        assert all(0 <= v <= pp_cap for v in per_person.values())
    seen = [(e.payment_id, e.kind) for e in w.repo.ledger]
    assert len(seen) == len(set(seen))
    active = {e.payment_id for e in w.repo.ledger if e.kind == "payment.triggered"} - {
        e.payment_id for e in w.repo.ledger if e.kind == "payment.reversed"
    }
    for entry in w.repo.ledger:
        if entry.payment_id in active:  # everything still paid rests on an achieved outcome
            assert (
                w.repo.fact_status[((entry.provider_id, entry.episode_id), entry.measure_id)].status
                == "achieved"
            )
    for entry in w.repo.ledger:
        if entry.kind == "payment.reversed":
            paid = next(
                t for t in w.repo.ledger if t.payment_id == entry.payment_id and t.kind == "payment.triggered"
            )
            assert entry.amount_ore == paid.amount_ore


PRICES = {"planned_discharge": 100, "no_replacement_12m": 80, "education_or_work_12m": 60}
finals = st.dictionaries(
    st.tuples(st.sampled_from(EPISODES), st.sampled_from(MEASURES)),
    st.tuples(st.sampled_from(["achieved", "achieved", "not_achieved", "pending"]), st.integers(0, 4)),
    min_size=1,
)
noise = st.lists(
    st.tuples(
        st.sampled_from(EPISODES),
        st.sampled_from(MEASURES),
        st.sampled_from(["achieved", "not_achieved", "void"]),
        st.integers(0, 4),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(
    final=finals,
    transient=noise,
    data=st.data(),
    pp_cap=st.integers(50, 300),
    total_cap=st.integers(50, 700),
)
def test_net_payments_are_the_same_in_every_arrival_order_and_match_the_reference(
    final: dict[tuple[str, str], tuple[str, int]],
    transient: list[tuple[str, str, str, int]],
    data: st.DataObject,
    pp_cap: int,
    total_cap: int,
) -> None:
    """Any arrival order of placements and facts (each fact's transient states before its final one, the
    facts of different episodes interleaved at random, outcome dates that tie) ends with the net per milestone
    that tests/reference.py computes from the final facts: first determined, first paid under both caps.
    Every step keeps the running ledger, entry by entry, within both caps."""
    from ..reference import expected_payments

    definition = contract(
        per_participant_cap_ore=pp_cap,
        total_cap_ore=total_cap,
        milestones=[
            {"milestone_id": f"m-{m}", "measure_id": m, "price_ore": price} for m, price in PRICES.items()
        ],
    )
    steps: list[tuple[object, ...]] = [("place", e) for e in EPISODES]
    steps += [("fact", e, m, status, day) for e, m, status, day in transient if (e, m) in final]
    steps += [("fact", e, m, status, day) for (e, m), (status, day) in final.items()]
    order = data.draw(st.permutations(steps))
    # Per fact, its transient states come before its final one; across facts the order stays random.
    slots: dict[tuple[object, ...], list[int]] = {}
    for index, step in enumerate(order):
        if step[0] == "fact":
            slots.setdefault(step[1:3], []).append(index)
    arranged = list(order)
    for key, positions in slots.items():
        mine = [s for s in steps if s[0] == "fact" and s[1:3] == key]  # transient first, final last
        for position, step in zip(positions, mine, strict=True):
            arranged[position] = step
    w = World(definition)
    for step in arranged:
        if step[0] == "place":
            w.place(placement(str(step[1])))
        else:
            _, episode, measure, status, day = step
            w.outcome(str(episode), str(measure), str(status), on=date(2025, 1, 1) + timedelta(days=int(day)))
        running: dict[str, int] = {}
        total = 0
        for entry in w.repo.ledger:  # as a finance system adds the entries up, one by one
            sign = 1 if entry.kind == "payment.triggered" else -1
            total += sign * entry.amount_ore
            running[entry.episode_id] = running.get(entry.episode_id, 0) + sign * entry.amount_ore
            assert 0 <= total <= total_cap
            assert 0 <= running[entry.episode_id] <= pp_cap
    net: dict[tuple[str, str, str], int] = {}
    for entry in w.repo.ledger:
        key = (entry.provider_id, entry.episode_id, entry.milestone_id)
        net[key] = net.get(key, 0) + (
            entry.amount_ore if entry.kind == "payment.triggered" else -entry.amount_ore
        )
    facts = {
        ("p1", e, m): {"status": status, "outcome_date": date(2025, 1, 1) + timedelta(days=day)}
        for (e, m), (status, day) in final.items()
    }
    want = expected_payments(
        definition.model_dump(mode="json"), {("p1", e): f"v1:{e.upper()}" for e in EPISODES}, facts
    )
    assert {k: v for k, v in net.items() if v} == want
    seen = [(e.payment_id, e.kind) for e in w.repo.ledger]
    assert len(seen) == len(set(seen))


def test_a_reversal_says_what_happened_and_names_the_event() -> None:
    """Issue 19 item 4: not "outcome: outcome is now void" but the change a finance reader can check."""
    w = World()
    w.place(placement("e1"))
    w.outcome("e1", "no_replacement_12m", "achieved", on=date(2025, 2, 1))
    w.outcome("e1", "no_replacement_12m", "not_achieved", on=date(2025, 3, 2))
    reversal = w.repo.ledger[-1]
    assert reversal.kind == "payment.reversed"
    assert (
        reversal.reason
        == "re-placed, or reported re-placed, on 2025-03-02, within 12 months of discharge (event ev-e1); recorded when test"
    )
    w.outcome("e1", "planned_discharge", "achieved")
    w.outcome("e1", "planned_discharge", "void")
    assert w.repo.ledger[-1].reason is not None and w.repo.ledger[-1].reason.startswith(
        "Planned discharge: the outcome no longer stands; an event it rested on was retracted or corrected"
    )


def test_contracts_passes_over_the_care_events_it_does_not_read_and_dead_letters_the_rest() -> None:
    """Contracts reads placement.started and retractions: ended placements and follow-ups are passed over by
    their type header, undecoded (a bad one is measures' to dead-letter). A record of a type it reads, or one
    without a type header, is decoded, and bad input there is an UndecodableRecord (dead-lettered)."""
    from types import SimpleNamespace

    from utfall_contracts.consumers import care_events_handler
    from utfall_events.codec import UndecodableRecord
    from utfall_events.vocabulary import (
        EVENT_RETRACTED,
        FOLLOWUP_RECORDED,
        PLACEMENT_ENDED,
        PLACEMENT_STARTED,
    )
    from utfall_platform.clock import FixedClock

    handle = care_events_handler(FixedClock(NOW))

    def record(type_: str | None) -> Any:
        headers = [("ce_id", b"e-1"), ("ce_source", b"provider/p"), ("ce_time", b"2025-01-01T00:00:00+00:00")]
        if type_ is not None:
            headers.append(("ce_type", type_.encode()))
        return SimpleNamespace(
            topic="care.events.v1", partition=0, offset=0, key=b"k", value=b"{not json", headers=headers
        )

    # nothing it reads in the batch: no connection is touched (None would fail on any use)
    asyncio.run(handle(None, [record(PLACEMENT_ENDED), record(FOLLOWUP_RECORDED)]))  # type: ignore[arg-type]
    for read in (PLACEMENT_STARTED, EVENT_RETRACTED, None, "se.utfall.unknown.v1"):
        with pytest.raises(UndecodableRecord):
            asyncio.run(handle(None, [record(PLACEMENT_ENDED), record(read)]))  # type: ignore[arg-type]


def test_a_register_validated_milestone_pays_only_what_the_register_confirms_and_reverses_on_contradiction() -> (
    None
):
    """Issue 31 item 4: the same measure paid twice, once as reported and once as the register verifies it."""
    both = contract(
        milestones=[
            {"milestone_id": "reported", "measure_id": "no_replacement_12m", "price_ore": 100},
            {
                "milestone_id": "verified",
                "measure_id": "no_replacement_12m",
                "price_ore": 100,
                "validation": "register",
            },
        ]
    )
    w = World(both)
    w.place(placement("e1"))
    w.outcome("e1", "no_replacement_12m", "achieved", on=date(2025, 2, 1))
    assert w.kinds() == [("triggered", 100)]  # the provider's report pays the reported milestone only
    assert w.repo.ledger[0].milestone_id == "reported" and w.repo.ledger[0].reason is None
    register = FactInfo(
        "achieved",
        1,
        (EventRef(source="provider/p1", id="ev-e1"), EventRef(source="register/reg", id="plac-9")),
        "v1:E1",
        date(2025, 2, 1),
    )
    w.repo.fact_status[(("p1", "e1"), "no_replacement_12m@register")] = register
    w.sync([("p1", "e1")])
    paid = w.repo.ledger[-1]
    assert (paid.milestone_id, paid.kind, paid.measure_id) == (
        "verified",
        "payment.triggered",
        "no_replacement_12m",
    )
    assert paid.reason == "validated by register (register/reg#plac-9)"
    # a later register extract contradicts: a re-placement with a home not on Utfall
    w.repo.fact_status[(("p1", "e1"), "no_replacement_12m@register")] = FactInfo(
        "not_achieved", 1, (EventRef(source="register/reg", id="plac-10"),), "v1:E1", date(2025, 1, 20)
    )
    w.sync([("p1", "e1")])
    reversal = w.repo.ledger[-1]
    assert (reversal.milestone_id, reversal.kind) == ("verified", "payment.reversed")
    assert reversal.reason == (
        "No re-placement within 12 months: the register now says not achieved on 2025-01-20 "
        "(register row register/reg#plac-10); recorded when test"
    )
    assert w.net() == 100 and [e.milestone_id for e in w.repo.ledger].count("reported") == 1


def test_only_a_verifiable_measure_can_be_validated_by_register() -> None:
    with pytest.raises(ValueError, match="registers verify only"):
        contract(
            milestones=[
                {
                    "milestone_id": "m",
                    "measure_id": "planned_discharge",
                    "price_ore": 1,
                    "validation": "register",
                }
            ]
        )
