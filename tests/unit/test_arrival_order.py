"""The same events give the same episodes and facts in any arrival order (SPEC §3), through ingest's admission
and measures' fold together: corrections before and after their retraction, retractions before their target,
events before their placement, duplicates, re-placements across providers, split into batches at random.
Both are checked against tests/reference.py, which is written from the specification."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from utfall_events.personnummer import make_person_number
from utfall_measures.domain.episodes import Episode, StoredEvent, fold_episodes
from utfall_measures.domain.facts import Fact, facts_for_subject

from ..helpers import ended, followup, retraction, started
from ..reference import expected_facts
from .fakes import FakeIngest

TODAY = date(2026, 6, 30)
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
REASONS = ["planned", "unplanned", "moved_to_other_care", "aged_out", "other"]
DESTINATIONS = ["parents", "relatives", "family_home", "hvb", "unknown"]


def at(day: date, minutes: int = 0) -> datetime:
    return datetime.combine(day, time(9, 0), UTC) + timedelta(minutes=minutes)


@st.composite
def cohorts(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few subjects, each with one to three episodes (possibly with another provider) and the mess of real
    feeds: corrected starts, ends and follow-ups (retraction plus corrected event), retractions that stand
    alone, duplicates."""
    events: list[dict[str, Any]] = []
    for s in range(draw(st.integers(1, 3))):
        pid = make_person_number(date(2007, 1, 1) + timedelta(days=97 * s), 100 + s, female=s % 2 == 0)
        start = date(2021, 1, 1) + timedelta(days=draw(st.integers(0, 500)))
        for e in range(draw(st.integers(1, 3))):
            provider = draw(st.sampled_from(["p-a", "p-b"]))
            episode = f"ep-{s}-{e}"
            care = draw(st.sampled_from(["hvb", "hvb", "family_home", "outpatient"]))
            stay = draw(st.integers(20, 500))
            end = start + timedelta(days=stay)
            s1 = started(
                provider,
                episode,
                pid,
                start=start.isoformat(),
                care_type=care,
                event_id=f"{episode}-s1",
                time=at(start),
            )
            events.append(s1)
            if draw(st.booleans()):  # the start corrected: another target group, a start day or two later
                corrected = start + timedelta(days=draw(st.integers(0, 2)))
                events.append(retraction(provider, s1["id"], event_id=f"{episode}-rs1", time=at(start, 600)))
                events.append(
                    started(
                        provider,
                        episode,
                        pid,
                        start=corrected.isoformat(),
                        care_type=care,
                        target_group="mental_health",
                        event_id=f"{episode}-s2",
                        time=at(start, 601),
                    )
                )
            if draw(st.integers(0, 4)) == 0 or end > TODAY - timedelta(days=30):
                break  # still placed
            e1 = ended(
                provider,
                episode,
                end=end.isoformat(),
                reason=draw(st.sampled_from(REASONS)),
                destination=draw(st.sampled_from(DESTINATIONS)),
                event_id=f"{episode}-e1",
                time=at(end),
            )
            events.append(e1)
            fix = draw(st.sampled_from(["none", "none", "corrected", "retracted"]))
            last_end = end
            if fix != "none":
                events.append(retraction(provider, e1["id"], event_id=f"{episode}-re1", time=at(end, 900)))
            if fix == "corrected":
                last_end = end + timedelta(days=draw(st.integers(0, 20)))
                events.append(
                    ended(
                        provider,
                        episode,
                        end=last_end.isoformat(),
                        reason=draw(st.sampled_from(REASONS)),
                        destination=draw(st.sampled_from(DESTINATIONS)),
                        event_id=f"{episode}-e2",
                        time=at(end, 901),
                    )
                )
            for month in (6, 12):
                assessed = last_end + timedelta(days=month * 31 + draw(st.integers(0, 30)))
                if assessed > TODAY or not draw(st.booleans()):
                    continue
                f1 = followup(
                    provider,
                    episode,
                    month=month,
                    assessed=assessed.isoformat(),
                    replaced=draw(st.sampled_from([False, False, True, None])),
                    education=draw(st.sampled_from([True, False, None])),
                    event_id=f"{episode}-f{month}",
                    time=at(assessed),
                )
                events.append(f1)
                if draw(st.integers(0, 3)) == 0:  # the follow-up corrected
                    events.append(
                        retraction(provider, f1["id"], event_id=f"{episode}-rf{month}", time=at(assessed, 60))
                    )
                    events.append(
                        followup(
                            provider,
                            episode,
                            month=month,
                            assessed=assessed.isoformat(),
                            replaced=False,
                            education=True,
                            living="own_housing",
                            event_id=f"{episode}-f{month}b",
                            time=at(assessed, 61),
                        )
                    )
            start = last_end + timedelta(days=draw(st.integers(1, 400)))
            if start > TODAY - timedelta(days=30):
                break
    duplicates = draw(st.lists(st.sampled_from(events), max_size=4))
    return events + duplicates


def facts_of(episodes: dict[Any, Episode]) -> dict[Any, Fact]:
    by_subject: dict[str, list[Episode]] = defaultdict(list)
    for episode in episodes.values():
        by_subject[episode.subject_ref].append(episode)
    out: dict[Any, Fact] = {}
    for group in by_subject.values():
        out.update(facts_for_subject(group, TODAY))
    return out


def run(events: list[dict[str, Any]], cuts: list[int]) -> tuple[FakeIngest, list[StoredEvent]]:
    ingest = FakeIngest(today=TODAY, now=NOW)
    position = 0
    for size in cuts:
        if position >= len(events):
            break
        ingest.admit(events[position : position + size])
        position += size
    if position < len(events):
        ingest.admit(events[position:])
    return ingest, ingest.stored_events()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_arrival_order_gives_the_same_episodes_and_facts(data: st.DataObject) -> None:
    events = data.draw(cohorts(), label="cohort")
    shuffled = data.draw(st.permutations(events), label="order")
    cuts = data.draw(st.lists(st.integers(1, 6), max_size=len(events)), label="batch sizes")

    in_order, stored_in_order = run(events, [len(events)])
    other, stored_other = run(shuffled, cuts)

    for ingest in (in_order, other):
        assert not ingest.rejected, ingest.rejected
        assert not ingest.held, sorted(ingest.held)  # everything waited for has arrived
    episodes = fold_episodes(stored_in_order)
    assert fold_episodes(stored_other) == episodes
    facts = facts_of(episodes)
    assert facts_of(fold_episodes(stored_other)) == facts

    event(f"facts: {min(len(facts) // 10 * 10, 50)}+")
    event(f"held at some point: {other.ever_held > 0}")
    event(f"correction before its retraction: {_correction_first(shuffled)}")
    reference = expected_facts(events, TODAY)
    got = {(key[0][0], key[0][1], key[1]): (fact.status, fact.outcome_date) for key, fact in facts.items()}
    assert got == {key: (value["status"], value["outcome_date"]) for key, value in reference.items()}


CORRECTS = {"-s2": "-rs1", "-e2": "-re1", "-f6b": "-rf6", "-f12b": "-rf12"}  # corrected id -> its retraction


def _correction_first(order: list[dict[str, Any]]) -> bool:
    seen: set[str] = set()
    for e in order:
        episode, _, suffix = e["id"].rpartition("-")
        if f"-{suffix}" in CORRECTS and episode + CORRECTS[f"-{suffix}"] not in seen:
            return True
        seen.add(e["id"])
    return False


def test_a_correction_before_its_retraction_counts_as_if_the_retraction_came_first() -> None:
    """The issue's case: the corrected discharge arrives first, the retraction of the old one last."""
    pid = make_person_number(date(2008, 4, 12), 238, female=True)
    s = started("p-a", "ep", pid, event_id="s", time=at(date(2024, 3, 1)))
    e1 = ended("p-a", "ep", reason="unplanned", event_id="e1", time=at(date(2024, 9, 1)))
    e2 = ended("p-a", "ep", reason="planned", event_id="e2", time=at(date(2024, 9, 5)))
    r = retraction("p-a", "e1", event_id="r", time=at(date(2024, 9, 5), 1))
    results = []
    for order in ([s, e1, r, e2], [s, e1, e2, r], [s, e2, e1, r], [r, e2, s, e1], [e1, r, e2, s]):
        ingest, stored = run(order, [1] * len(order))
        assert not ingest.rejected and not ingest.held
        results.append(facts_of(fold_episodes(stored)))
    assert all(r == results[0] for r in results)
    statuses = {k[1]: f.status for k, f in results[0].items()}
    assert statuses["planned_discharge"] == "achieved"
