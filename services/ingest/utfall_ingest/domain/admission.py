"""Admission of a batch of checked events against what ingest already knows: a pure decision.

For each event, in order: duplicate (same source and id seen before) -> retraction target -> date order
and one-of-a-kind rules for the episode -> accepted (published now), held (its episode's
placement.started has not arrived, so its subject_ref is unknown) or rejected. A placement.started
releases the events held for its episode, right after itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal

from utfall_events.vocabulary import EVENT_RETRACTED, FOLLOWUP_RECORDED, PLACEMENT_ENDED, PLACEMENT_STARTED

from .validation import CheckedEvent, EpisodeState, Reason, check_against_episode

EpisodeKey = tuple[str, str]  # (source, episode_id)
EventKey = tuple[str, str]  # (source, event id)


@dataclass(frozen=True, slots=True)
class KnownEvent:
    source: str
    event_id: str
    type: str
    episode_id: str
    status: Literal["accepted", "held"]
    retracted: bool = False
    followup_month: int | None = None


@dataclass(frozen=True, slots=True)
class Episode:
    source: str
    episode_id: str
    subject_ref: str | None = None
    started_event_id: str | None = None
    start_date: date | None = None
    ended_event_id: str | None = None
    end_date: date | None = None
    followups: tuple[tuple[int, str], ...] = ()  # (month, event id) of non-retracted follow-ups

    def followup_event(self, month: int) -> str | None:
        return next((eid for m, eid in self.followups if m == month), None)

    def state(self) -> EpisodeState:
        return EpisodeState(self.subject_ref, self.start_date, self.end_date)


@dataclass(frozen=True, slots=True)
class Publish:
    event: CheckedEvent
    episode_id: str
    subject_ref: str
    retracted_event_type: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["accepted", "held", "duplicate", "rejected"]
    reasons: tuple[Reason, ...] = ()


@dataclass
class Decision:
    outcomes: list[Outcome] = field(default_factory=list)
    new_events: list[KnownEvent] = field(default_factory=list)
    retracted: list[tuple[EventKey, str]] = field(default_factory=list)  # (target, retracting event id)
    episodes: dict[EpisodeKey, Episode] = field(default_factory=dict)  # changed episodes, final state
    held: list[CheckedEvent] = field(default_factory=list)  # newly held
    released: list[EventKey] = field(default_factory=list)  # previously held, now published
    publish: list[Publish] = field(default_factory=list)


def decide_batch(
    items: list[CheckedEvent],
    *,
    known: dict[EventKey, KnownEvent],
    episodes: dict[EpisodeKey, Episode],
    held: dict[EpisodeKey, list[CheckedEvent]],
) -> Decision:
    decision = Decision()
    known = dict(known)
    episodes = dict(episodes)
    held = {k: list(v) for k, v in held.items()}
    held_at_index: dict[EventKey, int] = {}

    def episode(key: EpisodeKey) -> Episode:
        return episodes.get(key) or Episode(key[0], key[1])

    def save(ep: Episode) -> None:
        episodes[(ep.source, ep.episode_id)] = ep
        decision.episodes[(ep.source, ep.episode_id)] = ep

    def rejected(*reasons: Reason) -> None:
        decision.outcomes.append(Outcome("rejected", tuple(reasons)))

    def apply_effect(event: CheckedEvent, episode_id: str, ep: Episode, target: KnownEvent | None) -> Episode:
        if event.type == PLACEMENT_STARTED:
            return replace(
                ep,
                subject_ref=event.fields["subject_ref"],
                started_event_id=event.event_id,
                start_date=event.fields["start_date"],
            )
        if event.type == PLACEMENT_ENDED:
            return replace(ep, ended_event_id=event.event_id, end_date=event.fields["end_date"])
        if event.type == FOLLOWUP_RECORDED:
            month = int(event.fields["followup_month"])
            return replace(ep, followups=(*ep.followups, (month, event.event_id)))
        assert target is not None
        if target.type == PLACEMENT_STARTED and ep.started_event_id == target.event_id:
            return replace(ep, started_event_id=None, start_date=None)
        if target.type == PLACEMENT_ENDED and ep.ended_event_id == target.event_id:
            return replace(ep, ended_event_id=None, end_date=None)
        if target.type == FOLLOWUP_RECORDED:
            return replace(ep, followups=tuple(f for f in ep.followups if f[1] != target.event_id))
        return ep

    for event in items:
        key = (event.source, event.event_id)
        if key in known:
            decision.outcomes.append(Outcome("duplicate"))
            continue
        target: KnownEvent | None = None
        episode_id = event.episode_id
        if event.type == EVENT_RETRACTED:
            target = known.get((event.source, event.fields["retracted_event_id"]))
            if target is None:
                rejected(
                    Reason(
                        "/data/retracted_event_id",
                        "unknown_event",
                        "no event with this id has been accepted from this source",
                    )
                )
                continue
            if target.type == EVENT_RETRACTED:
                rejected(
                    Reason(
                        "/data/retracted_event_id",
                        "retraction_of_retraction",
                        "a retraction cannot be retracted; send the corrected event instead",
                    )
                )
                continue
            if target.retracted:
                rejected(
                    Reason("/data/retracted_event_id", "already_retracted", "that event is already retracted")
                )
                continue
            episode_id = target.episode_id
        assert episode_id is not None
        ep_key = (event.source, episode_id)
        ep = episode(ep_key)
        reasons = check_against_episode(event, ep.state())
        if event.type == PLACEMENT_STARTED and ep.started_event_id is not None:
            reasons.append(
                Reason(
                    "",
                    "already_started",
                    "the episode already has a placement.started; retract it first to correct it",
                )
            )
        if event.type == PLACEMENT_ENDED and ep.ended_event_id is not None:
            reasons.append(
                Reason(
                    "",
                    "already_ended",
                    "the episode already has a placement.ended; retract it first to correct it",
                )
            )
        if event.type == FOLLOWUP_RECORDED and ep.followup_event(int(event.fields["followup_month"])):
            reasons.append(
                Reason(
                    "/data/followup_month",
                    "followup_already_recorded",
                    "a follow-up for this month is already recorded; retract it first",
                )
            )
        if reasons:
            rejected(*reasons)
            continue

        new_ep = apply_effect(event, episode_id, ep, target)
        if target is not None:
            known[(target.source, target.event_id)] = replace(target, retracted=True)
            decision.retracted.append(((target.source, target.event_id), event.event_id))
        month = int(event.fields["followup_month"]) if event.type == FOLLOWUP_RECORDED else None
        subject = new_ep.subject_ref
        status: Literal["accepted", "held"] = "accepted" if subject is not None else "held"
        record = KnownEvent(event.source, event.event_id, event.type, episode_id, status, False, month)
        known[key] = record
        decision.new_events.append(record)
        save(new_ep)
        if status == "held":
            if target is not None:  # remember what it retracts: the target may not be loaded at release
                event = replace(event, fields={**event.fields, "retracted_event_type": target.type})
            held.setdefault(ep_key, []).append(event)
            decision.held.append(event)
            held_at_index[key] = len(decision.outcomes)
            decision.outcomes.append(Outcome("held"))
            continue
        assert subject is not None
        decision.publish.append(Publish(event, episode_id, subject, target.type if target else None))
        decision.outcomes.append(Outcome("accepted"))
        if event.type == PLACEMENT_STARTED:
            for waiting in held.pop(ep_key, []):
                waiting_key = (waiting.source, waiting.event_id)
                target_type = None
                if waiting.type == EVENT_RETRACTED:
                    tgt = known.get((waiting.source, waiting.fields["retracted_event_id"]))
                    target_type = tgt.type if tgt else waiting.fields.get("retracted_event_type")
                decision.publish.append(Publish(waiting, episode_id, subject, target_type))
                if waiting_key in held_at_index:
                    decision.outcomes[held_at_index[waiting_key]] = Outcome("accepted")
                    decision.held.remove(waiting)
                    decision.new_events[:] = [
                        replace(e, status="accepted") if (e.source, e.event_id) == waiting_key else e
                        for e in decision.new_events
                    ]
                else:
                    decision.released.append(waiting_key)
                previous = known.get(waiting_key)
                if previous is not None:
                    known[waiting_key] = replace(previous, status="accepted")
    return decision
