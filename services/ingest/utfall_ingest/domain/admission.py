"""Admission of a batch of checked events against what ingest already knows: a pure decision.

For each event, in order: duplicate (same source and id seen before) -> retraction target -> date order
against the episode -> accepted (published now), held or rejected.

What makes the result independent of arrival order (docs/architecture.md, "Arrival order"):
- Several live events may compete for one slot of an episode (two placement.ended, say: a corrected
  discharge that arrives before the retraction of the one it replaces). All are accepted and published;
  measures' fold counts the latest by (event time, id), exactly as if the retraction had come first.
- An event whose episode's placement.started has not arrived is held (its subject_ref is unknown) and
  published right after the start.
- A retraction whose target has not arrived is held until the target arrives, then applied as if it had
  come after it. Held events that wait longer than the hold period are dead-lettered with a reason.
- Date order (end before start, follow-up before discharge) is refused only when the event contradicts
  every live candidate of the other slot, so a correction in flight never refuses a valid event.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Literal

from utfall_events.vocabulary import EVENT_RETRACTED, FOLLOWUP_RECORDED, PLACEMENT_ENDED, PLACEMENT_STARTED

from .validation import CheckedEvent, EpisodeState, Reason, Rejection, check_against_episode

EpisodeKey = tuple[str, str]  # (source, episode_id)
EventKey = tuple[str, str]  # (source, event id)
Waiting = Literal["placement", "retracted_event"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class KnownEvent:
    source: str
    event_id: str
    type: str
    episode_id: str | None  # None only for a retraction still waiting for the event it retracts
    status: Literal["accepted", "held"]
    retracted: bool = False
    followup_month: int | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A live (not retracted) placement.started or placement.ended of an episode."""

    event_id: str
    time: datetime
    day: date  # start_date or end_date
    subject_ref: str | None = None  # a placement.started's pseudonym

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.time, self.event_id)


@dataclass(frozen=True, slots=True)
class Episode:
    source: str
    episode_id: str
    subject_ref: str | None = None  # the latest live start's; kept when every start is retracted
    starts: tuple[Candidate, ...] = ()
    ends: tuple[Candidate, ...] = ()

    def state(self) -> EpisodeState:
        return EpisodeState(
            self.subject_ref, tuple(c.day for c in self.starts), tuple(c.day for c in self.ends)
        )

    def without(self, event_id: str) -> Episode:
        starts = tuple(c for c in self.starts if c.event_id != event_id)
        ends = tuple(c for c in self.ends if c.event_id != event_id)
        subject = max(starts, key=lambda c: c.order).subject_ref if starts else self.subject_ref
        return replace(self, subject_ref=subject, starts=starts, ends=ends)

    def with_start(self, candidate: Candidate) -> Episode:
        starts = (*self.starts, candidate)
        return replace(self, subject_ref=max(starts, key=lambda c: c.order).subject_ref, starts=starts)


@dataclass(frozen=True, slots=True)
class HeldEvent:
    event: CheckedEvent
    episode_id: str | None  # waiting for this episode's placement.started
    awaits_event_id: str | None = None  # a retraction waiting for the event it retracts
    held_at: datetime | None = None  # None: held by this batch

    @property
    def key(self) -> EventKey:
        return (self.event.source, self.event.event_id)


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
    waiting: Waiting | None = None


@dataclass
class Decision:
    outcomes: list[Outcome] = field(default_factory=list)  # one per batch item, in order
    new_events: dict[EventKey, KnownEvent] = field(default_factory=dict)  # rows to insert
    changed_events: dict[EventKey, KnownEvent] = field(default_factory=dict)  # known rows: status, episode
    forgotten: set[EventKey] = field(default_factory=set)  # known rows refused now (see late_rejections)
    retracted: list[tuple[EventKey, str]] = field(default_factory=list)  # (target, retracting event id)
    episodes: dict[EpisodeKey, Episode] = field(default_factory=dict)  # changed episodes, final state
    hold: dict[EventKey, HeldEvent] = field(default_factory=dict)  # held rows to insert
    unhold: set[EventKey] = field(default_factory=set)  # held rows of earlier batches to delete
    publish: list[Publish] = field(default_factory=list)
    late_rejections: list[Rejection] = field(default_factory=list)  # held by an earlier batch, refused now

    @property
    def held(self) -> list[CheckedEvent]:
        return [h.event for h in self.hold.values()]


def _reject(*reasons: Reason) -> Outcome:
    return Outcome("rejected", tuple(reasons))


def _retraction_reasons(target: KnownEvent) -> list[Reason]:
    if target.type == EVENT_RETRACTED:
        return [
            Reason(
                "/data/retracted_event_id",
                "retraction_of_retraction",
                "a retraction cannot be retracted; send the corrected event instead",
            )
        ]
    if target.retracted:
        return [Reason("/data/retracted_event_id", "already_retracted", "that event is already retracted")]
    return []


class _Admission:
    """One batch's decision; the state it starts from is copied, never changed."""

    def __init__(
        self,
        known: dict[EventKey, KnownEvent],
        episodes: dict[EpisodeKey, Episode],
        held: dict[EpisodeKey, list[HeldEvent]],
        awaiting: dict[EventKey, list[HeldEvent]],
    ) -> None:
        self.decision = Decision()
        self.known = dict(known)
        self.stored = set(known)  # rows that exist already (updated, not inserted)
        self.episodes = dict(episodes)
        self.held = {k: list(v) for k, v in held.items()}
        self.awaiting = {k: list(v) for k, v in awaiting.items()}
        self.stored_holds = {h.key for v in (*held.values(), *awaiting.values()) for h in v}
        self.in_batch: dict[EventKey, int] = {}  # outcome index of this batch's events

    # -- bookkeeping -----------------------------------------------------------------------------------
    def remember(self, record: KnownEvent) -> None:
        key = (record.source, record.event_id)
        self.known[key] = record
        if key in self.stored:
            self.decision.changed_events[key] = record
        else:
            self.decision.new_events[key] = record

    def forget(self, key: EventKey) -> None:
        self.known.pop(key, None)
        self.decision.new_events.pop(key, None)
        self.decision.changed_events.pop(key, None)
        if key in self.stored:
            self.decision.forgotten.add(key)

    def hold(self, held: HeldEvent) -> None:
        self.decision.hold[held.key] = held

    def unhold(self, key: EventKey) -> None:
        self.decision.hold.pop(key, None)
        if key in self.stored_holds:
            self.decision.unhold.add(key)

    def set_outcome(self, key: EventKey, outcome: Outcome) -> bool:
        index = self.in_batch.get(key)
        if index is None:
            return False
        self.decision.outcomes[index] = outcome
        return True

    def save(self, episode: Episode) -> None:
        key = (episode.source, episode.episode_id)
        self.episodes[key] = episode
        self.decision.episodes[key] = episode

    # -- the rules -------------------------------------------------------------------------------------
    def run(self, items: list[CheckedEvent]) -> Decision:
        for event in items:
            key = (event.source, event.event_id)
            if key in self.known:
                self.decision.outcomes.append(Outcome("duplicate"))
                continue
            self.in_batch[key] = len(self.decision.outcomes)
            self.decision.outcomes.append(Outcome("held"))  # placeholder, set below
            self.decision.outcomes[self.in_batch[key]] = self.admit(event, None)
        return self.decision

    def admit(self, event: CheckedEvent, held_at: datetime | None) -> Outcome:
        key = (event.source, event.event_id)
        target: KnownEvent | None = None
        episode_id = event.episode_id
        if event.type == EVENT_RETRACTED:
            target_key = (event.source, str(event.fields["retracted_event_id"]))
            target = self.known.get(target_key)
            if target is None:
                waiting = HeldEvent(event, None, target_key[1], held_at)
                self.awaiting.setdefault(target_key, []).append(waiting)
                self.hold(waiting)
                self.remember(KnownEvent(event.source, event.event_id, event.type, None, "held"))
                return Outcome("held", waiting="retracted_event")
            reasons = _retraction_reasons(target)
            if reasons:
                return _reject(*reasons)
            episode_id = target.episode_id
        assert episode_id is not None
        episode_key = (event.source, episode_id)
        episode = self.episodes.get(episode_key) or Episode(event.source, episode_id)
        reasons = check_against_episode(event, episode.state())
        if reasons:
            return _reject(*reasons)

        updated = _apply(event, episode, target)
        if target is not None:
            target_key = (target.source, target.event_id)
            self.known[target_key] = replace(target, retracted=True)
            if target_key in self.decision.new_events:
                self.decision.new_events[target_key] = self.known[target_key]
            self.decision.retracted.append((target_key, event.event_id))
        month = int(event.fields["followup_month"]) if event.type == FOLLOWUP_RECORDED else None
        subject = updated.subject_ref
        status: Literal["accepted", "held"] = "accepted" if subject is not None else "held"
        self.remember(KnownEvent(event.source, event.event_id, event.type, episode_id, status, False, month))
        self.save(updated)
        if subject is None:
            if target is not None:  # remember what it retracts: the target may not be loaded at release
                event = replace(event, fields={**event.fields, "retracted_event_type": target.type})
            waiting = HeldEvent(event, episode_id, None, held_at)
            self.held.setdefault(episode_key, []).append(waiting)
            self.hold(waiting)
            outcome = Outcome("held", waiting="placement")
        else:
            self.decision.publish.append(Publish(event, episode_id, subject, target.type if target else None))
            outcome = Outcome("accepted")
            if event.type == PLACEMENT_STARTED:
                self.release_episode(episode_key, subject)
        self.release_retractions_of(key)
        return outcome

    def release_episode(self, episode_key: EpisodeKey, subject: str) -> None:
        """The episode's placement.started arrived: publish what waited for it, in the order it came."""
        for waiting in self.held.pop(episode_key, []):
            self.unhold(waiting.key)
            event = waiting.event
            target_type = None
            if event.type == EVENT_RETRACTED:
                target = self.known.get((event.source, str(event.fields["retracted_event_id"])))
                target_type = target.type if target else event.fields.get("retracted_event_type")
            self.decision.publish.append(Publish(event, episode_key[1], subject, target_type))
            record = self.known.get(waiting.key)
            month = int(event.fields["followup_month"]) if event.type == FOLLOWUP_RECORDED else None
            if record is None:
                record = KnownEvent(
                    event.source, event.event_id, event.type, episode_key[1], "held", False, month
                )
            self.remember(replace(record, status="accepted", episode_id=episode_key[1]))
            self.set_outcome(waiting.key, Outcome("accepted"))

    def release_retractions_of(self, target_key: EventKey) -> None:
        """The event arrived after retractions of it: apply them now, as if they had come after it."""
        for waiting in self.awaiting.pop(target_key, []):
            self.unhold(waiting.key)
            outcome = self.admit(waiting.event, waiting.held_at)
            if outcome.status == "rejected":
                self.forget(waiting.key)
                if not self.set_outcome(waiting.key, outcome):
                    event = waiting.event
                    self.decision.late_rejections.append(
                        Rejection(event.event_id, event.source, event.type, outcome.reasons)
                    )
            else:
                self.set_outcome(waiting.key, outcome)


def _apply(event: CheckedEvent, episode: Episode, target: KnownEvent | None) -> Episode:
    if event.type == PLACEMENT_STARTED:
        return episode.with_start(
            Candidate(event.event_id, event.time, event.fields["start_date"], event.fields["subject_ref"])
        )
    if event.type == PLACEMENT_ENDED:
        candidate = Candidate(event.event_id, event.time, event.fields["end_date"])
        return replace(episode, ends=(*episode.ends, candidate))
    if event.type == EVENT_RETRACTED:
        assert target is not None
        return episode.without(target.event_id)
    return episode  # a follow-up: measures picks the latest live one per month


def decide_batch(
    items: list[CheckedEvent],
    *,
    known: dict[EventKey, KnownEvent],
    episodes: dict[EpisodeKey, Episode],
    held: dict[EpisodeKey, list[HeldEvent]],
    awaiting: dict[EventKey, list[HeldEvent]] | None = None,
) -> Decision:
    """`known`: what ingest has recorded of the batch's ids, their retraction targets and held events;
    `held`: events waiting for their episode's placement.started; `awaiting`: retractions waiting for the
    event they retract, by that event's key."""
    return _Admission(known, episodes, held, awaiting or {}).run(items)
