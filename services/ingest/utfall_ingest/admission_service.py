"""The service layer of ingest: one batch of raw events in, receipts out, all effects in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from utfall_events.registry import ProviderV1
from utfall_events.vocabulary import CARE_EVENT_TYPES
from utfall_platform.clock import Clock
from utfall_platform.outbox import OutboxMessage, enqueue

from . import metrics as ingest_metrics
from . import store
from .domain.admission import Waiting, decide_batch
from .domain.validation import CheckedEvent, PseudonymKey, Rejection, check_event
from .messages import care_event_message, rejected_message

HELD_DETAIL: dict[Waiting, str] = {
    "placement": "stored; published once the episode's placement.started arrives",
    "retracted_event": "stored; applied once the event it retracts arrives",
}


@dataclass(frozen=True, slots=True)
class Receipt:
    id: str | None
    source: str | None
    status: str  # accepted | duplicate | rejected
    held: bool = False
    reasons: tuple[dict[str, str], ...] = ()
    waiting: Waiting | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "source": self.source, "status": self.status}
        if self.held:
            out["held"] = True
            out["detail"] = HELD_DETAIL[self.waiting or "placement"]
        if self.reasons:
            out["reasons"] = list(self.reasons)
        return out


async def admit(
    conn: asyncpg.Connection,
    raw_events: list[Any],
    *,
    provider_id: str | Sequence[str | None] | None,
    channel: str,
    clock: Clock,
    key: PseudonymKey,
    providers: Mapping[str, ProviderV1],
    positions: list[str | None] | None = None,
) -> list[Receipt]:
    """Validate, deduplicate, decide and write; the caller owns the transaction.

    `provider_id` is who sent the events, authenticated outside them: the provider of the HTTP request's API key,
    or per record the provider whose raw topic it was read from (only that provider's principal may write it)."""
    now = clock.now()
    today = clock.today()
    checked: list[tuple[int, CheckedEvent]] = []
    rejections: list[tuple[int, Rejection]] = []
    for index, raw in enumerate(raw_events):
        sender = provider_id if provider_id is None or isinstance(provider_id, str) else provider_id[index]
        result = check_event(
            raw, authenticated_provider=sender, providers=providers, today=today, now=now, key=key
        )
        if isinstance(result, Rejection):
            rejections.append((index, result))
        else:
            checked.append((index, result))

    receipts: list[Receipt | None] = [None] * len(raw_events)
    messages: list[OutboxMessage] = []
    late: list[Rejection] = []  # held by an earlier batch, refused now that what it waited for arrived
    if checked:
        items = [c for _, c in checked]
        await store.lock_sources(conn, (c.source for c in items))
        known, episodes, held, awaiting = await store.load_context(conn, items)
        decision = decide_batch(items, known=known, episodes=episodes, held=held, awaiting=awaiting)
        await store.save_decision(conn, decision, channel=channel, now=now)
        messages.extend(care_event_message(p, ingested_at=now) for p in decision.publish)
        late.extend(decision.late_rejections)
        for (index, event), outcome in zip(checked, decision.outcomes, strict=True):
            if outcome.status == "rejected":
                rejections.append(
                    (index, Rejection(event.event_id, event.source, event.type, outcome.reasons))
                )
                continue
            receipts[index] = Receipt(
                event.event_id,
                event.source,
                "accepted" if outcome.status == "held" else outcome.status,
                held=outcome.status == "held",
                waiting=outcome.waiting,
            )
            ingest_metrics.EVENTS.labels(channel, event.type, outcome.status).inc()
    if rejections:
        await store.save_rejections(conn, [r for _, r in rejections], channel=channel, now=now)
        for index, rejection in rejections:
            position = positions[index] if positions else None
            messages.append(rejected_message(rejection, channel=channel, at=now, position=position))
            receipts[index] = Receipt(
                rejection.event_id,
                rejection.source,
                "rejected",
                reasons=tuple(r.as_dict() for r in rejection.reasons),
            )
            ingest_metrics.EVENTS.labels(
                channel, rejection.type if rejection.type in _TYPES else "unknown", "rejected"
            ).inc()
            for reason in rejection.reasons:
                ingest_metrics.REJECTION_REASONS.labels(channel, reason.code).inc()
    if late:
        await store.save_rejections(conn, late, channel=channel, now=now)
        messages.extend(rejected_message(r, channel=channel, at=now) for r in late)
        for rejection in late:
            for reason in rejection.reasons:
                ingest_metrics.REJECTION_REASONS.labels(channel, reason.code).inc()
    await enqueue(conn, store.SCHEMA, messages)
    assert all(r is not None for r in receipts)
    return [r for r in receipts if r is not None]


_TYPES = frozenset(CARE_EVENT_TYPES)
