"""Admission of checked events against the episode state: duplicates, holds, date order, retractions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from utfall_ingest.domain.admission import Candidate, Episode, KnownEvent, decide_batch
from utfall_ingest.domain.validation import CheckedEvent

T = datetime(2025, 1, 1, tzinfo=UTC)
SRC = "provider/hvb-eken"


def started(
    eid: str, episode: str = "ep1", start: date = date(2024, 3, 1), subject: str = "v1:AAA"
) -> CheckedEvent:
    return CheckedEvent(
        eid,
        SRC,
        "hvb-eken",
        "se.utfall.placement.started.v1",
        T,
        episode,
        {
            "episode_id": episode,
            "provider_id": "hvb-eken",
            "unit_id": "u",
            "municipality_code": "0180",
            "care_type": "hvb",
            "legal_basis": "SoL",
            "target_group": "other",
            "start_date": start,
            "subject_ref": subject,
            "birth_year": 2008,
            "sex": "female",
            "age_at_start": 15,
        },
    )


def ended(eid: str, episode: str = "ep1", end: date = date(2024, 9, 1)) -> CheckedEvent:
    return CheckedEvent(
        eid,
        SRC,
        "hvb-eken",
        "se.utfall.placement.ended.v1",
        T,
        episode,
        {
            "episode_id": episode,
            "end_date": end,
            "end_reason": "planned",
            "destination": "parents",
            "provider_id": "hvb-eken",
        },
    )


def followup(
    eid: str, episode: str = "ep1", month: int = 12, assessed: date = date(2025, 9, 1)
) -> CheckedEvent:
    return CheckedEvent(
        eid,
        SRC,
        "hvb-eken",
        "se.utfall.followup.recorded.v1",
        T,
        episode,
        {
            "episode_id": episode,
            "followup_month": month,
            "assessed_on": assessed,
            "living_situation": "parents",
            "provider_id": "hvb-eken",
        },
    )


def retract(eid: str, target: str) -> CheckedEvent:
    return CheckedEvent(
        eid,
        SRC,
        "hvb-eken",
        "se.utfall.event.retracted.v1",
        T,
        None,
        {"retracted_event_id": target, "reason": "fel", "provider_id": "hvb-eken"},
    )


def statuses(decision) -> list[str]:  # type: ignore[no-untyped-def]
    return [o.status for o in decision.outcomes]


def test_in_order_batch_is_published_in_order() -> None:
    d = decide_batch([started("a"), ended("b"), followup("c")], known={}, episodes={}, held={})
    assert statuses(d) == ["accepted"] * 3
    assert [p.event.event_id for p in d.publish] == ["a", "b", "c"]
    assert {p.subject_ref for p in d.publish} == {"v1:AAA"}


def test_duplicates_within_a_batch_and_against_what_is_known() -> None:
    known = {(SRC, "x"): KnownEvent(SRC, "x", "se.utfall.placement.ended.v1", "ep9", "accepted")}
    d = decide_batch([started("a"), started("a"), ended("x", "ep9")], known=known, episodes={}, held={})
    assert statuses(d) == ["accepted", "duplicate", "duplicate"]
    assert len(d.publish) == 1


def test_events_before_their_placement_are_held_then_released_after_it() -> None:
    first = decide_batch([ended("b"), followup("c")], known={}, episodes={}, held={})
    assert statuses(first) == ["held", "held"] and not first.publish
    episodes = first.episodes
    known = {(e.source, e.event_id): e for e in first.new_events.values()}
    held = {(SRC, "ep1"): list(first.hold.values())}
    second = decide_batch([started("a")], known=known, episodes=episodes, held=held)
    assert statuses(second) == ["accepted"]
    assert [p.event.event_id for p in second.publish] == ["a", "b", "c"]
    assert second.unhold == {(SRC, "b"), (SRC, "c")}


def test_hold_and_release_in_one_batch_reports_accepted() -> None:
    d = decide_batch([ended("b"), started("a")], known={}, episodes={}, held={})
    assert statuses(d) == ["accepted", "accepted"]
    assert [p.event.event_id for p in d.publish] == ["a", "b"]
    assert not d.held


def test_end_before_start_is_rejected_when_the_start_is_known() -> None:
    d = decide_batch(
        [started("a", start=date(2024, 5, 1)), ended("b", end=date(2024, 4, 1))],
        known={},
        episodes={},
        held={},
    )
    assert statuses(d) == ["accepted", "rejected"]
    assert d.outcomes[1].reasons[0].code == "end_before_start"


def test_start_after_a_known_end_is_rejected() -> None:
    d = decide_batch(
        [ended("b", end=date(2024, 4, 1)), started("a", start=date(2024, 5, 1))],
        known={},
        episodes={},
        held={},
    )
    assert statuses(d) == ["held", "rejected"]
    assert d.outcomes[1].reasons[0].code == "start_after_end"


def test_followup_before_discharge_is_rejected() -> None:
    d = decide_batch(
        [started("a"), ended("b"), followup("c", assessed=date(2024, 8, 1))], known={}, episodes={}, held={}
    )
    assert d.outcomes[2].reasons[0].code == "followup_before_discharge"


def test_competing_events_are_accepted_and_a_retraction_settles_which_counts() -> None:
    """A corrected event may arrive before the retraction of the one it replaces: both are published and
    measures counts the latest by (time, id) until the retraction comes."""
    d = decide_batch(
        [started("a"), started("a2"), ended("b"), ended("b2"), followup("c"), followup("c2")],
        known={},
        episodes={},
        held={},
    )
    assert statuses(d) == ["accepted"] * 6
    assert len(d.episodes[(SRC, "ep1")].ends) == 2
    corrected = decide_batch(
        [started("a"), ended("b"), ended("b2", end=date(2024, 10, 1)), retract("r", "b")],
        known={},
        episodes={},
        held={},
    )
    assert statuses(corrected) == ["accepted"] * 4
    assert [c.event_id for c in corrected.episodes[(SRC, "ep1")].ends] == ["b2"]
    assert corrected.retracted == [((SRC, "b"), "r")]
    assert corrected.publish[3].retracted_event_type == "se.utfall.placement.ended.v1"


def test_date_order_is_refused_only_against_every_live_candidate() -> None:
    two_ends = decide_batch(
        [started("a"), ended("b", end=date(2024, 9, 1)), ended("b2", end=date(2024, 12, 1))],
        known={},
        episodes={},
        held={},
    )
    later = decide_batch(
        [followup("c", assessed=date(2024, 10, 1)), followup("d", month=6, assessed=date(2024, 8, 1))],
        known={},
        episodes=two_ends.episodes,
        held={},
    )
    assert statuses(later) == ["accepted", "rejected"]  # after one of the two ends; before both


def test_retraction_rules() -> None:
    d = decide_batch(
        [started("a"), retract("r1", "nope"), retract("r2", "a"), retract("r3", "r2"), retract("r4", "a")],
        known={},
        episodes={},
        held={},
    )
    assert statuses(d) == ["accepted", "held", "accepted", "rejected", "rejected"]
    assert d.outcomes[1].waiting == "retracted_event"
    assert [o.reasons[0].code for o in d.outcomes if o.reasons] == [
        "retraction_of_retraction",
        "already_retracted",
    ]
    assert d.episodes[(SRC, "ep1")].starts == ()  # retracted start: a corrected one may follow
    again = decide_batch(
        [started("a2", start=date(2024, 3, 2))],
        known={(e.source, e.event_id): e for e in d.new_events.values()},
        episodes=d.episodes,
        held={},
    )
    assert statuses(again) == ["accepted"]


def test_a_retraction_before_its_target_waits_and_applies_when_the_target_arrives() -> None:
    first = decide_batch([started("a"), retract("r", "b")], known={}, episodes={}, held={})
    assert statuses(first) == ["accepted", "held"]
    waiting = list(first.hold.values())
    assert waiting[0].awaits_event_id == "b" and waiting[0].episode_id is None
    known = {(e.source, e.event_id): e for e in first.new_events.values()}
    second = decide_batch(
        [ended("b")],
        known=known,
        episodes=first.episodes,
        held={},
        awaiting={(SRC, "b"): [replace(waiting[0], held_at=T)]},
    )
    assert statuses(second) == ["accepted"]
    assert [p.event.event_id for p in second.publish] == ["b", "r"]  # the target first, then its retraction
    assert second.unhold == {(SRC, "r")} and not second.hold
    assert second.changed_events[(SRC, "r")].status == "accepted"
    assert second.episodes[(SRC, "ep1")].ends == ()


def test_a_waiting_retraction_refused_when_its_target_arrives_is_a_late_rejection() -> None:
    first = decide_batch([retract("r1", "x"), retract("r2", "x")], known={}, episodes={}, held={})
    assert statuses(first) == ["held", "held"]
    known = {(e.source, e.event_id): e for e in first.new_events.values()}
    awaiting = {(SRC, "x"): [replace(h, held_at=T) for h in first.hold.values()]}
    second = decide_batch([started("x")], known=known, episodes={}, held={}, awaiting=awaiting)
    assert statuses(second) == ["accepted"]
    assert [r.reasons[0].code for r in second.late_rejections] == ["already_retracted"]
    assert second.forgotten == {(SRC, "r2")}


def test_episode_state_survives_between_batches() -> None:
    episodes = {(SRC, "ep1"): Episode(SRC, "ep1", "v1:AAA", (Candidate("a", T, date(2024, 3, 1), "v1:AAA"),))}
    d = decide_batch([ended("b", end=date(2024, 2, 1))], known={}, episodes=episodes, held={})
    assert statuses(d) == ["rejected"]


def test_a_held_retraction_released_in_a_later_batch_still_names_what_it_retracts() -> None:
    first = decide_batch([ended("b"), retract("r", "b")], known={}, episodes={}, held={})
    assert statuses(first) == ["held", "held"]
    known = {(e.source, e.event_id): e for e in first.new_events.values()}
    # the next batch loads only what it names: not the retracted event itself
    later = decide_batch(
        [started("a")],
        known={k: v for k, v in known.items() if k[1] == "r"},
        episodes=first.episodes,
        held={(SRC, "ep1"): list(first.hold.values())},
    )
    released = {p.event.event_id: p for p in later.publish}
    assert released["r"].retracted_event_type == "se.utfall.placement.ended.v1"


def test_published_messages_match_the_published_models() -> None:
    """care_event_message skips a second validation on the hot path; this pins its output to the contract."""
    import orjson

    from utfall_events.care import PUBLISHED_MODEL_BY_TYPE
    from utfall_ingest.messages import care_event_message

    d = decide_batch(
        [started("a"), ended("b"), followup("c"), retract("r", "b")], known={}, episodes={}, held={}
    )
    for item in d.publish:
        message = care_event_message(item, ingested_at=T)
        data = orjson.loads(message.value)
        PUBLISHED_MODEL_BY_TYPE[item.event.type].model_validate(data)
        assert message.key == b"v1:AAA"
