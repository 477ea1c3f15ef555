"""Ingest's domain metrics."""

from prometheus_client import Counter

EVENTS = Counter(
    "utfall_ingest_events_total",
    "Events received, by channel, type and outcome",
    ["channel", "type", "outcome"],
)
REJECTION_REASONS = Counter(
    "utfall_ingest_rejection_reasons_total", "Rejection reasons, by channel and code", ["channel", "code"]
)
HELD_EXPIRED = Counter(
    "utfall_ingest_held_expired_total", "Held events dead-lettered: no placement.started came"
)
