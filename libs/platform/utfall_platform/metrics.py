"""Prometheus metrics shared by the services (one process-wide registry, served at /metrics)."""

from __future__ import annotations

import gc
import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

registry: CollectorRegistry = REGISTRY

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

MESSAGES_IN = Counter(
    "utfall_messages_consumed_total", "Kafka records consumed and committed", ["service", "topic"]
)
MESSAGES_SKIPPED = Counter(
    "utfall_messages_redelivered_total",
    "Records seen again after a restart or rebalance and skipped (their effect was already committed)",
    ["service", "topic"],
)
BATCH_SECONDS = Histogram(
    "utfall_handler_seconds",
    "Time to process one consumed batch in one transaction",
    ["service", "topic"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "utfall_handler_batch_records",
    "Records per consumed batch",
    ["service", "topic"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
CONSUMER_LAG = Gauge(
    "utfall_consumer_lag",
    "End offset minus the committed position, per partition",
    ["service", "topic", "partition"],
)
TRANSIENT_RETRIES = Counter(
    "utfall_transient_retries_total", "Batches retried after a transient fault", ["service", "topic"]
)
BACKGROUND_ERRORS = Counter(
    "utfall_background_errors_total",
    "Failed rounds of a background loop (sampler, tick, expiry, relay), transient or not",
    ["service", "task", "kind"],
)
DEAD_LETTERS = Counter(
    "utfall_dead_letters_total", "Records sent to a dead-letter topic", ["service", "topic", "reason"]
)
OUTBOX_PUBLISHED = Counter("utfall_outbox_published_total", "Outbox rows published", ["schema", "topic"])
OUTBOX_BACKLOG = Gauge("utfall_outbox_backlog", "Outbox rows not yet published", ["schema"])
OUTBOX_OLDEST_AGE = Gauge(
    "utfall_outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox row", ["schema"]
)
EVENT_TO_READ_MODEL = Histogram(
    "utfall_event_to_read_model_seconds",
    "Delay from ingest accepting a care event to its effect committed in a read model",
    ["service"],
    buckets=DELAY_BUCKETS,
)
HTTP_REQUESTS = Histogram(
    "utfall_http_request_seconds",
    "HTTP request latency",
    ["service", "route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)


GC_PAUSES = Histogram(
    "utfall_gc_pause_seconds",
    "Pauses of Python's cyclic garbage collector (the event loop stands still for each)",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)


def observe_gc_pauses() -> None:
    """Time every collection into GC_PAUSES (once per process)."""
    if _time_collection in gc.callbacks:
        return
    gc.callbacks.append(_time_collection)


_collection_started = [0.0]


def _time_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _collection_started[0] = time.perf_counter()
    else:
        GC_PAUSES.labels(str(info["generation"])).observe(time.perf_counter() - _collection_started[0])
