"""Each outcome measure pinned on hand-made episodes, window boundaries day by day, and order independence."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utfall_measures.domain.catalogue import BY_ID, CATALOGUE, MEASURE_IDS
from utfall_measures.domain.episodes import StoredEvent, fold_episodes
from utfall_measures.domain.facts import facts_for_subject
from utfall_measures.domain.windows import add_months, closes_on

P = "hvb-eken"
SUBJECT = "v1:SUBJECT"
_n = iter(range(1, 10**9))


def ev(
    kind: str,
    episode: str,
    data: dict[str, Any],
    *,
    provider: str = P,
    subject: str = SUBJECT,
    at: datetime | None = None,
    eid: str | None = None,
) -> StoredEvent:
    return StoredEvent(
        f"provider/{provider}",
        eid or f"e{next(_n)}",
        f"se.utfall.{kind}.v1",
        at or datetime(2024, 1, 1, tzinfo=UTC),
        subject,
        provider,
        episode,
        {"episode_id": episode, "provider_id": provider, "subject_ref": subject, **data},
    )


def start(episode: str = "ep1", day: str = "2023-01-10", care_type: str = "hvb", **kw: Any) -> StoredEvent:
    return ev(
        "placement.started",
        episode,
        {
            "unit_id": "u1",
            "municipality_code": "0180",
            "care_type": care_type,
            "legal_basis": "SoL",
            "target_group": "behaviour",
            "sex": "female",
            "birth_year": 2008,
            "age_at_start": 14,
            "start_date": day,
        },
        **kw,
    )


def end(
    episode: str = "ep1",
    day: str = "2024-01-31",
    reason: str = "planned",
    destination: str = "parents",
    **kw: Any,
) -> StoredEvent:
    return ev(
        "placement.ended", episode, {"end_date": day, "end_reason": reason, "destination": destination}, **kw
    )


def follow(
    episode: str = "ep1",
    month: int = 12,
    day: str = "2025-02-05",
    living: str = "parents",
    education: bool | None = True,
    replaced: bool | None = False,
    **kw: Any,
) -> StoredEvent:
    return ev(
        "followup.recorded",
        episode,
        {
            "followup_month": month,
            "assessed_on": day,
            "living_situation": living,
            "in_education_or_work": education,
            "replaced_since_discharge": replaced,
            "offending": None,
            "substance_misuse": None,
        },
        **kw,
    )


def retract(target: StoredEvent, **kw: Any) -> StoredEvent:
    return ev(
        "event.retracted",
        target.episode_id,
        {"retracted_event_id": target.event_id, "retracted_event_type": target.type, "reason": "fel"},
        provider=target.provider_id,
        subject=target.subject_ref,
        **kw,
    )


def statuses(events: list[StoredEvent], today: date) -> dict[tuple[str, str], str]:
    episodes = list(fold_episodes(events).values())
    by_subject: dict[str, list[Any]] = {}
    for e in episodes:
        by_subject.setdefault(e.subject_ref, []).append(e)
    out = {}
    for group in by_subject.values():
        for (key, measure), fact in facts_for_subject(group, today).items():
            out[(key[1], measure)] = fact.status
    return out


def status(events: list[StoredEvent], measure: str, today: date, episode: str = "ep1") -> str | None:
    return statuses(events, today).get((episode, measure))


def test_catalogue_is_versioned_data_with_both_languages() -> None:
    assert set(MEASURE_IDS) == {
        "planned_discharge",
        "less_intensive_after",
        "no_replacement_6m",
        "no_replacement_12m",
        "no_replacement_24m",
        "education_or_work_12m",
        "living_at_home_12m",
        "followup_coverage_12m",
    }
    for m in CATALOGUE:
        assert m.version >= 1 and m.title_sv and m.title_en and m.definition_sv and m.definition_en


def test_only_ended_episodes_have_facts() -> None:
    assert statuses([start()], date(2030, 1, 1)) == {}


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("planned", "achieved"),
        ("unplanned", "not_achieved"),
        ("moved_to_other_care", "not_achieved"),
        ("aged_out", "not_achieved"),
        ("other", "not_achieved"),
    ],
)
def test_planned_discharge(reason: str, expected: str) -> None:
    assert status([start(), end(reason=reason)], "planned_discharge", date(2024, 2, 1)) == expected


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("parents", "achieved"),
        ("relatives", "achieved"),
        ("own_housing", "achieved"),
        ("supported_housing", "achieved"),
        ("family_home", "achieved"),
        ("hvb", "not_achieved"),
        ("sis", "not_achieved"),
        ("other", "not_achieved"),
        ("unknown", "not_achieved"),
    ],
)
def test_less_intensive_after(destination: str, expected: str) -> None:
    assert (
        status([start(), end(destination=destination)], "less_intensive_after", date(2024, 2, 1)) == expected
    )


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 8, 31), 6) == date(2024, 2, 29)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)


@pytest.mark.parametrize("months", [6, 12, 24])
def test_no_replacement_window_and_grace_day_by_day(months: int) -> None:
    ended_on = date(2024, 1, 31)
    last_pending = add_months(ended_on, months) + timedelta(days=60)
    events = [start(), end(day=ended_on.isoformat())]
    measure = f"no_replacement_{months}m"
    for offset in range(-3, 4):
        today = last_pending + timedelta(days=offset)
        assert status(events, measure, today) == ("pending" if offset <= 0 else "missing"), today
    assert closes_on(ended_on, months) == last_pending


@pytest.mark.parametrize("months", [6, 12, 24])
def test_replacement_on_window_edges(months: int) -> None:
    ended_on = date(2024, 1, 31)
    window_end = add_months(ended_on, months)
    measure = f"no_replacement_{months}m"
    base = [start(), end(day=ended_on.isoformat())]
    for restart, expected in [
        (ended_on, "pending"),
        (ended_on + timedelta(days=1), "not_achieved"),
        (window_end, "not_achieved"),
        (window_end + timedelta(days=1), "pending"),
    ]:
        events = [
            *base,
            start("ep2", restart.isoformat(), provider="familjehem-vast", care_type="family_home"),
        ]
        assert status(events, measure, ended_on + timedelta(days=2)) == expected, restart


def test_replacement_by_another_provider_counts_but_outpatient_does_not() -> None:
    base = [start(), end(day="2024-01-31"), follow(month=12, day="2025-02-05", replaced=False)]
    assert status(base, "no_replacement_12m", date(2025, 3, 1)) == "achieved"
    elsewhere = [*base, start("ep2", "2024-06-01", provider="sis-ljungen", care_type="sis")]
    assert status(elsewhere, "no_replacement_12m", date(2025, 3, 1)) == "not_achieved"
    assert status(elsewhere, "no_replacement_6m", date(2025, 3, 1)) == "not_achieved"
    outpatient = [*base, start("ep2", "2024-06-01", provider="oppenvard-mitt", care_type="outpatient")]
    assert status(outpatient, "no_replacement_12m", date(2025, 3, 1)) == "achieved"
    other_person = [
        *base,
        start("ep2", "2024-06-01", provider="sis-ljungen", care_type="sis", subject="v1:OTHER"),
    ]
    assert status(other_person, "no_replacement_12m", date(2025, 3, 1)) == "achieved"


def test_an_earlier_followup_saying_yes_beats_a_later_no() -> None:
    events = [
        start(),
        end(day="2024-01-31"),
        follow(month=6, day="2024-08-05", replaced=True),
        follow(month=12, day="2025-02-05", replaced=False),
    ]
    assert status(events, "no_replacement_12m", date(2025, 3, 1)) == "not_achieved"
    assert status(events, "no_replacement_6m", date(2025, 3, 1)) == "not_achieved"
    later_yes = [
        start(),
        end(day="2024-01-31"),
        follow(month=6, day="2024-08-05", replaced=False),
        follow(month=24, day="2026-02-05", replaced=True),
    ]
    assert status(later_yes, "no_replacement_6m", date(2026, 3, 1)) == "achieved"
    assert status(later_yes, "no_replacement_24m", date(2026, 3, 1)) == "not_achieved"


@pytest.mark.parametrize(
    ("answer", "expected"), [(True, "achieved"), (False, "not_achieved"), (None, "pending")]
)
def test_education_or_work_12m(answer: bool | None, expected: str) -> None:
    events = [start(), end(day="2024-01-31"), follow(month=12, day="2025-02-05", education=answer)]
    assert status(events, "education_or_work_12m", date(2025, 3, 1)) == expected
    if answer is None:
        assert status(events, "education_or_work_12m", date(2025, 4, 2)) == "missing"


@pytest.mark.parametrize(
    ("living", "expected"),
    [
        ("parents", "achieved"),
        ("relatives", "achieved"),
        ("own_housing", "achieved"),
        ("supported_housing", "achieved"),
        ("family_home", "not_achieved"),
        ("institution", "not_achieved"),
        ("unknown", "pending"),
    ],
)
def test_living_at_home_12m(living: str, expected: str) -> None:
    events = [start(), end(day="2024-01-31"), follow(month=12, day="2025-02-05", living=living)]
    assert status(events, "living_at_home_12m", date(2025, 3, 1)) == expected


def test_followup_coverage_12m() -> None:
    base = [start(), end(day="2024-01-31")]
    last_pending = closes_on(date(2024, 1, 31), 12)
    assert status(base, "followup_coverage_12m", last_pending) == "pending"
    assert status(base, "followup_coverage_12m", last_pending + timedelta(days=1)) == "not_achieved"
    assert (
        status([*base, follow(month=12, day="2025-03-01")], "followup_coverage_12m", date(2025, 3, 2))
        == "achieved"
    )
    assert (
        status([*base, follow(month=6, day="2024-08-01")], "followup_coverage_12m", date(2026, 1, 1))
        == "not_achieved"
    )


def test_retraction_counts_as_never_sent_and_correction_replaces() -> None:
    ended = end(reason="planned")
    assert status([start(), ended], "planned_discharge", date(2024, 2, 1)) == "achieved"
    assert status([start(), ended, retract(ended)], "planned_discharge", date(2024, 2, 1)) is None
    corrected = [start(), ended, retract(ended), end(reason="unplanned")]
    assert status(corrected, "planned_discharge", date(2024, 2, 1)) == "not_achieved"
    begun = start()
    assert status([begun, end(), retract(begun)], "planned_discharge", date(2024, 2, 1)) is None


def test_data_errors_are_set_aside_not_counted() -> None:
    backwards = fold_episodes([start(day="2024-05-01"), end(day="2024-04-01")])
    (episode,) = backwards.values()
    assert episode.data_errors == ("end_before_start",) and not episode.closed
    early = fold_episodes([start(), end(day="2024-01-31"), follow(month=12, day="2024-01-01")])
    (episode,) = early.values()
    assert episode.data_errors == ("followup_12_before_discharge",) and 12 not in episode.followups


def test_length_of_stay() -> None:
    (episode,) = fold_episodes([start(day="2023-01-10"), end(day="2024-01-31")]).values()
    assert episode.length_of_stay_days == (date(2024, 1, 31) - date(2023, 1, 10)).days


# --- order independence ----------------------------------------------------------------------------------


def _stream() -> list[StoredEvent]:
    first_end = end("ep1", "2024-01-31", reason="unplanned")
    return [
        start("ep1", "2023-01-10"),
        first_end,
        retract(first_end),
        end("ep1", "2024-02-02", reason="planned"),
        follow("ep1", 6, "2024-08-10", replaced=False),
        follow("ep1", 12, "2025-02-10", education=False),
        start("ep2", "2025-01-05", provider="sis-ljungen", care_type="sis"),
        end("ep2", "2025-06-30", provider="sis-ljungen", reason="aged_out", destination="own_housing"),
        start("ep3", "2024-03-01", subject="v1:OTHER"),
        end("ep3", "2024-04-01", subject="v1:OTHER"),
        follow("ep3", 12, "2024-03-15", subject="v1:OTHER"),
    ]


@settings(max_examples=300)
@given(
    order=st.permutations(range(11)),
    duplicates=st.lists(st.integers(0, 10), max_size=6),
    today=st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31)),
)
def test_any_permutation_and_duplication_gives_identical_facts(
    order: list[int], duplicates: list[int], today: date
) -> None:
    stream = _stream()
    reference = statuses(stream, today)
    shuffled = [stream[i] for i in order] + [stream[i] for i in duplicates]
    # storage keeps one copy per (source, id): duplicates arrive, the store dedups
    unique = list({(e.source, e.event_id): e for e in shuffled}.values())
    assert statuses(unique, today) == reference
    assert statuses(shuffled, today) == reference  # the fold itself is also duplicate-proof


def test_catalogue_lookup() -> None:
    assert BY_ID["no_replacement_24m"].window_months == 24


def test_outcome_messages_match_the_published_model() -> None:
    """The projection writes outcome messages straight to JSON: one EpisodeOutcomesV2 per episode holding every
    changed fact, voids included; this pins the shape to the model and its v1 view to OutcomeFactV1."""
    import orjson

    from utfall_events.outcomes import EpisodeOutcomesV2
    from utfall_events.topics import OUTCOMES_V2
    from utfall_measures.domain.revisions import Publication
    from utfall_measures.messages import outcome_messages

    events = [start(), end(day="2024-01-31"), follow(month=12, day="2025-02-05")]
    (episode,) = fold_episodes(events).values()
    facts = facts_for_subject([episode], date(2025, 3, 1))
    publications = [Publication(3, fact, episode, None) for fact in facts.values()]
    first = next(iter(facts.values()))
    publications.append(Publication(4, None, None, _stored(first, episode, 3)))  # a fact voided beside them
    (message,) = outcome_messages(publications, datetime(2025, 3, 1, tzinfo=UTC))
    assert message.topic == OUTCOMES_V2 and message.key == SUBJECT.encode()
    model = EpisodeOutcomesV2.model_validate(orjson.loads(message.value))
    assert len(model.facts) == len(facts) + 1
    assert model.episode.end_date == date(2024, 1, 31)
    assert {f.measure_id for f in model.facts} == {m for (_, m) in facts}
    assert [f.status for f in model.facts if f.revision == 4] == ["void"]
    v1 = model.facts_v1()
    assert {f.fact_id for f in v1} == {f"{episode.provider_id}/{episode.episode_id}/{m}" for (_, m) in facts}
    assert all(f.subject_ref == SUBJECT and f.determined_at == model.determined_at for f in v1)


def _stored(plan_fact: Any, episode: Any, revision: int, **changes: Any) -> Any:
    """What write_facts would have stored for this fact (the row the next fold reads back)."""
    from utfall_measures.domain.revisions import StoredFact, evidence_json

    p, d = episode.placement, episode.discharge
    row = StoredFact(
        episode.provider_id,
        episode.episode_id,
        plan_fact.measure_id,
        plan_fact.measure_version,
        plan_fact.status,
        revision,
        evidence_json(plan_fact),
        plan_fact.closes_on,
        plan_fact.outcome_date,
        episode.subject_ref,
        p.unit_id,
        p.municipality_code,
        p.care_type,
        p.legal_basis,
        p.target_group,
        p.sex,
        p.age_at_start,
        p.start_date,
        d.end_date,
    )
    return replace(row, **changes)


def test_revisions_publish_status_and_outcome_date_changes_and_voids_once() -> None:
    from utfall_measures.domain.facts import facts_for_subject
    from utfall_measures.domain.revisions import plan_revisions

    today = date(2026, 6, 1)
    episodes = fold_episodes([start(), end(reason="planned")])
    ((key, episode),) = episodes.items()
    facts = facts_for_subject([episode], today, CATALOGUE)
    first = plan_revisions({}, facts, episodes)
    assert {w.revision for w in first.writes} == {1} and len(first.publish) == len(facts) == len(CATALOGUE)
    stored = {k: _stored(f, episode, 1) for k, f in facts.items()}
    again = plan_revisions(stored, facts, episodes)
    assert again.writes == [] and again.publish == []  # nothing changed: nothing written, nothing published
    planned = (key, "planned_discharge")
    detail = {**stored, planned: _stored(facts[planned], episode, 1, closes_on=date(2030, 1, 1))}
    rewritten = plan_revisions(detail, facts, episodes)
    assert [(w.measure_id, w.revision) for w in rewritten.writes] == [("planned_discharge", 1)]
    assert rewritten.publish == []  # a detail changed: rewritten at the same revision, not published
    flipped = {**stored, planned: _stored(facts[planned], episode, 3, status="not_achieved")}
    changed = plan_revisions(flipped, facts, episodes)
    assert [(p.revision, p.previous_status) for p in changed.publish] == [(4, "not_achieved")]
    gone = plan_revisions(stored, {}, {})
    assert {(w.revision, w.fact) for w in gone.writes} == {(2, None)} and len(gone.publish) == len(CATALOGUE)
    voided = {k: replace(v, status="void", revision=2) for k, v in stored.items()}
    assert plan_revisions(voided, {}, {}).publish == []  # a void is published once


_REF_TEXT = st.sampled_from(["provider/a", "provider/b", "e-1", "e-2", ""])
_STORED_ITEM = st.one_of(
    st.fixed_dictionaries({"source": _REF_TEXT, "id": _REF_TEXT}),
    st.dictionaries(st.sampled_from(["source", "id", "extra"]), _REF_TEXT, max_size=3),
)


@given(
    stored=st.lists(_STORED_ITEM, max_size=3),
    refs=st.lists(st.tuples(_REF_TEXT, _REF_TEXT), max_size=3),
)
def test_the_evidence_comparison_decides_as_comparing_the_stored_json(
    stored: list[dict[str, str]], refs: list[tuple[str, str]]
) -> None:
    """`_same_evidence` skips building the dicts; it must say what `stored == evidence_json(fact)` says."""
    from utfall_events.outcomes import EventRef
    from utfall_measures.domain.facts import Fact
    from utfall_measures.domain.revisions import _same_evidence, evidence_json

    fact = Fact("m", 1, "pending", tuple(EventRef(source=s, id=i) for s, i in refs), None)
    assert _same_evidence(stored, fact) == (stored == evidence_json(fact))
    assert _same_evidence(evidence_json(fact), fact)


def test_an_outcome_message_carries_the_live_episodes_dimensions_whatever_comes_first() -> None:
    """A void's stored row may carry older dimensions than the live episode beside it: the live ones win,
    whether the void is planned before or after the live facts."""
    import orjson

    from utfall_events.outcomes import EpisodeOutcomesV2
    from utfall_measures.domain.revisions import Publication
    from utfall_measures.messages import outcome_messages

    events = [start(), end(day="2024-01-31"), follow(month=12, day="2025-02-05")]
    (episode,) = fold_episodes(events).values()
    facts = facts_for_subject([episode], date(2025, 3, 1))
    live = [Publication(3, fact, episode, None) for fact in facts.values()]
    first = next(iter(facts.values()))
    void = Publication(4, None, None, _stored(first, episode, 3, unit_id="older-unit", end_date=None))
    now = datetime(2025, 3, 1, tzinfo=UTC)
    for publications in ([void, *live], [*live, void], [live[0], void, *live[1:]]):
        (message,) = outcome_messages(publications, now)
        model = EpisodeOutcomesV2.model_validate(orjson.loads(message.value))
        assert model.episode.unit_id == episode.placement.unit_id != "older-unit"
        assert model.episode.end_date == date(2024, 1, 31)
        assert len(model.facts) == len(facts) + 1
    (alone,) = outcome_messages([void], now)  # a void alone carries its stored row's dimensions
    assert EpisodeOutcomesV2.model_validate(orjson.loads(alone.value)).episode.unit_id == "older-unit"


@settings(max_examples=300)
@given(order=st.permutations(range(12)), split=st.integers(0, 12))
def test_episodes_no_new_event_touches_fold_as_they_did_before_it(order: list[int], split: int) -> None:
    """Measures rewrites only the episodes a batch's new events touch: every other episode must fold exactly as
    before the batch, whatever arrived before and after. The stream has a retraction filed under another
    episode than its target's, which ingest never publishes, so the rule does not lean on ingest for it."""
    from utfall_measures.domain.episodes import touched_episodes

    stream = _stream()
    target = stream[6]  # ep2's start
    misfiled = replace(retract(target), episode_id="ep1", provider_id=P)
    stream.append(misfiled)
    arrived = [stream[i] for i in order]
    before, new = arrived[:split], arrived[split:]
    folded_before, folded_now = fold_episodes(before), fold_episodes(arrived)
    touched = touched_episodes(new, arrived)
    for key in set(folded_before) | set(folded_now):
        if key not in touched:
            assert folded_before.get(key) == folded_now.get(key), key
    if misfiled in new and target in arrived:
        assert (target.provider_id, target.episode_id) in touched
