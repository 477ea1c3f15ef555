"""What contracts publishes, as outbox messages: each ledger entry on `payments.v1`, keyed by contract id, in
CloudEvents binary mode (the entry's id as `ce_id`, its payment id as `ce_subject`)."""

from __future__ import annotations

import orjson

from utfall_events.cloudevents import binary_headers
from utfall_events.payments import CLOUDEVENT_TYPES, PaymentV1
from utfall_events.topics import PAYMENTS
from utfall_platform.outbox import OutboxMessage


def payment_message(entry: PaymentV1) -> OutboxMessage:
    headers = binary_headers(
        event_id=entry.entry_id,
        source="utfall/contracts",
        type_=CLOUDEVENT_TYPES[entry.kind],
        time=entry.determined_at,
        subject=entry.payment_id,
        extra={},
    )
    return OutboxMessage(
        PAYMENTS, entry.contract_id.encode(), orjson.dumps(entry.model_dump(mode="json")), headers
    )
