"""The outcome messages measures publishes on `outcomes.v1` (through the outbox)."""

from __future__ import annotations

from datetime import datetime

import orjson

from utfall_events.cloudevents import binary_headers
from utfall_events.outcomes import OUTCOME_FACT_TYPE, EpisodeDimensions, EventRef, OutcomeFactV1
from utfall_events.topics import OUTCOMES
from utfall_platform.outbox import OutboxMessage

from .domain.episodes import Episode
from .domain.facts import Fact
from .domain.revisions import Publication, StoredFact, evidence_json


def publication_message(publication: Publication, now: datetime) -> OutboxMessage:
    if publication.fact is None:
        assert publication.previous is not None
        return void_message(publication.previous, publication.revision, now)
    assert publication.episode is not None
    return fact_message(
        publication.episode, publication.fact, publication.revision, publication.previous_status, now
    )


def _model_message(fact: OutcomeFactV1, now: datetime) -> OutboxMessage:
    return _outcome_message(
        fact.fact_id, fact.revision, fact.episode_id, fact.subject_ref, fact.model_dump_json().encode(), now
    )


def _outcome_message(
    fact_id: str, revision: int, episode_id: str, subject_ref: str, body: bytes, now: datetime
) -> OutboxMessage:
    headers = binary_headers(
        event_id=f"{fact_id}#{revision}",
        source="utfall/measures",
        type_=OUTCOME_FACT_TYPE,
        time=now,
        subject=episode_id,
        extra={},
    )
    return OutboxMessage(OUTCOMES, subject_ref.encode(), body, headers)


def fact_message(
    ep: Episode, fact: Fact, revision: int, previous: str | None, now: datetime
) -> OutboxMessage:
    """An OutcomeFactV1 written straight to JSON (the hot path publishes eight per ended episode; a unit test
    pins this shape to the model)."""
    p, d = ep.placement, ep.discharge
    assert p is not None
    body = {
        "fact_id": f"{ep.provider_id}/{ep.episode_id}/{fact.measure_id}",
        "measure_id": fact.measure_id,
        "measure_version": fact.measure_version,
        "subject_ref": ep.subject_ref,
        "episode_id": ep.episode_id,
        "status": fact.status,
        "previous_status": previous,
        "revision": revision,
        "evidence": evidence_json(fact),
        "determined_at": now,
        "outcome_date": fact.outcome_date,
        "episode": {
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
        },
    }
    return _outcome_message(
        str(body["fact_id"]), revision, ep.episode_id, ep.subject_ref, orjson.dumps(body), now
    )


def void_message(previous: StoredFact, revision: int, now: datetime) -> OutboxMessage:
    body = OutcomeFactV1(
        fact_id=f"{previous.provider_id}/{previous.episode_id}/{previous.measure_id}",
        measure_id=previous.measure_id,
        measure_version=previous.measure_version,
        subject_ref=previous.subject_ref,
        episode_id=previous.episode_id,
        status="void",
        previous_status=previous.status,
        revision=revision,
        evidence=[EventRef(**e) for e in previous.evidence],
        determined_at=now,
        # a stored fact carries every dimension of its episode under the same names
        episode=EpisodeDimensions(
            **{name: getattr(previous, name) for name in EpisodeDimensions.model_fields}
        ),
    )
    return _model_message(body, now)
