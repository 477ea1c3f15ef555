"""The outcome messages measures publishes on `outcomes.v2` (through the outbox): one per episode and change,
holding every fact of the episode that changed (`EpisodeOutcomesV2`). Written straight to JSON on this hot
path; a unit test pins the shape to the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from utfall_events.cloudevents import binary_headers
from utfall_events.outcomes import EPISODE_OUTCOMES_TYPE, EpisodeDimensions
from utfall_events.topics import OUTCOMES_V2
from utfall_platform.outbox import OutboxMessage

from .domain.episodes import Episode
from .domain.revisions import Publication, StoredFact, evidence_json

_DIMENSIONS = tuple(EpisodeDimensions.model_fields)


def outcome_messages(publications: list[Publication], now: datetime) -> list[OutboxMessage]:
    """The publications of one fold, grouped by episode (and subject, should a void name a former one)."""
    grouped: dict[tuple[str, str, str], _Group] = {}
    for publication in publications:
        if publication.fact is not None:
            ep = publication.episode
            assert ep is not None
            key = (ep.provider_id, ep.episode_id, ep.subject_ref)
            fact = publication.fact
            change = {
                "measure_id": fact.measure_id,
                "measure_version": fact.measure_version,
                "status": fact.status,
                "previous_status": publication.previous_status,
                "revision": publication.revision,
                "evidence": evidence_json(fact),
                "outcome_date": fact.outcome_date,
            }
            group = grouped.setdefault(key, _Group())
            if not group.live:  # the live episode's dimensions win over those a void's stored row carried
                group.dimensions, group.live = _episode_dimensions(ep), True
        else:
            previous = publication.previous
            assert previous is not None
            key = (previous.provider_id, previous.episode_id, previous.subject_ref)
            change = {
                "measure_id": previous.measure_id,
                "measure_version": previous.measure_version,
                "status": "void",
                "previous_status": previous.status,
                "revision": publication.revision,
                "evidence": previous.evidence,
                "outcome_date": None,
            }
            group = grouped.setdefault(key, _Group())
            if group.dimensions is None:
                group.dimensions = _stored_dimensions(previous)
        group.changes.append(change)
    return [
        _message(provider, episode_id, subject, group.dimensions, group.changes, now)
        for (provider, episode_id, subject), group in grouped.items()
        if group.dimensions is not None
    ]


@dataclass(slots=True)
class _Group:
    """One message's facts, and the episode dimensions it carries (a live episode's, else a void's row's)."""

    dimensions: dict[str, Any] | None = None
    live: bool = False
    changes: list[dict[str, Any]] = field(default_factory=list)


def _episode_dimensions(ep: Episode) -> dict[str, Any]:
    p, d = ep.placement, ep.discharge
    assert p is not None
    return {
        "provider_id": ep.provider_id,
        "unit_id": p.unit_id,
        "municipality_code": p.municipality_code,
        "care_type": p.care_type,
        "legal_basis": p.legal_basis,
        "target_group": p.target_group,
        "sex": p.sex,
        "age_at_start": p.age_at_start,
        "start_date": p.start_date,
        "end_date": d.end_date if d else None,
    }


def _stored_dimensions(previous: StoredFact) -> dict[str, Any]:
    # a stored fact carries every dimension of its episode under the same names
    return {name: getattr(previous, name) for name in _DIMENSIONS}


def _message(
    provider_id: str,
    episode_id: str,
    subject_ref: str,
    dimensions: dict[str, Any],
    changes: list[dict[str, Any]],
    now: datetime,
) -> OutboxMessage:
    facts = sorted(changes, key=lambda c: str(c["measure_id"]))
    body = {
        "subject_ref": subject_ref,
        "episode_id": episode_id,
        "determined_at": now,
        "episode": dimensions,
        "facts": facts,
    }
    revisions = ",".join(f"{c['measure_id']}#{c['revision']}" for c in facts)
    headers = binary_headers(
        event_id=f"{provider_id}/{episode_id}@{revisions}",
        source="utfall/measures",
        type_=EPISODE_OUTCOMES_TYPE,
        time=now,
        subject=episode_id,
        extra={},
    )
    return OutboxMessage(OUTCOMES_V2, subject_ref.encode(), orjson.dumps(body), headers)
