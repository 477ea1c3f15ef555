"""Topic names and their layout: the one place every service takes them from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int = -1  # keep forever: measures rebuilds replay care.events.v1 from the start
    max_message_bytes: int | None = None  # the broker's default (1 MB) when None
    segment_ms: int | None = None  # roll segments this often (retention deletes whole closed segments only)


# Providers that produce to Kafka write their own raw topic, `care.events.raw.v1.<provider id>`, which only they
# may write (a literal ACL): ingest takes the provider from the topic, so a producer cannot speak for another.
CARE_EVENTS_RAW = "care.events.raw.v1"
RAW_TOPIC_PREFIX = CARE_EVENTS_RAW + "."
# FastStream's subscription syntax for every provider's raw topic (a regex `care.events.raw.v1..*` to the client).
RAW_TOPICS_PATTERN = RAW_TOPIC_PREFIX + "{provider}"
CARE_EVENTS = "care.events.v1"
CARE_EVENTS_REJECTED = "care.events.rejected.v1"
OUTCOMES = "outcomes.v1"  # retired for writing: contracts reads what is left on it
OUTCOMES_V2 = "outcomes.v2"
PAYMENTS = "payments.v1"
AGGREGATES = "aggregates.v1"
REGISTERS = "registers.v1"  # register rows (pseudonymised) and extracts' coverage; kept, as care events are
API_KEYS = "auth.keys.v1"
PROVIDER_REGISTRY = "registry.providers.v1"
CONTRACT_COMMANDS = "contracts.commands.v1"
RELEASES = "releases.v1"
RELEASE_MAX_BYTES = 32 * 1024 * 1024
MEASURES_DEADLETTER = "measures.deadletter.v1"
CONTRACTS_DEADLETTER = "contracts.deadletter.v1"

ALL_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(CARE_EVENTS, 6),
    TopicSpec(CARE_EVENTS_REJECTED, 3),
    TopicSpec(OUTCOMES, 6),
    TopicSpec(OUTCOMES_V2, 6),
    TopicSpec(PAYMENTS, 3),
    TopicSpec(AGGREGATES, 3),
    TopicSpec(REGISTERS, 6),
    TopicSpec(API_KEYS, 1, compacted=True),
    TopicSpec(PROVIDER_REGISTRY, 1, compacted=True),
    TopicSpec(CONTRACT_COMMANDS, 1),
    # a measure's tables of a national release can pass 1 MB even compressed
    TopicSpec(RELEASES, 1, compacted=True, max_message_bytes=RELEASE_MAX_BYTES),
    TopicSpec(MEASURES_DEADLETTER, 1),
    TopicSpec(CONTRACTS_DEADLETTER, 1),
)


@dataclass(frozen=True, slots=True)
class Replication:
    factor: int  # replicas of every partition
    min_insync: int  # replicas that must have a write before it counts (acks=all)


def replication_for(brokers: int) -> Replication:
    """Every topic's replication on a cluster of `brokers`: on three or more, three replicas and two in sync for
    a write, so one broker can be lost (or restarted) without losing a confirmed write or refusing writes; a
    single node has one of each. Producers write with acks=all and idempotence, so `min_insync` is what a
    confirmed write is on."""
    if brokers >= 3:
        return Replication(3, 2)
    return Replication(max(brokers, 1), 1)


# Written only through a transactional outbox relay: each committed transaction leaves one control
# record after its last message, so a caught-up consumer sits one offset below the end.
TRANSACTIONAL_TOPICS: frozenset[str] = frozenset(
    {
        CARE_EVENTS,
        CARE_EVENTS_REJECTED,
        OUTCOMES,
        OUTCOMES_V2,
        PAYMENTS,
        AGGREGATES,
        REGISTERS,
        MEASURES_DEADLETTER,
        CONTRACTS_DEADLETTER,
    }
)


# A provider's raw topic is ingest's input, and may hold personnummer in clear (unless the provider seals them
# to ingest, utfall_events.sealed). Ingest needs a record only until it has committed what the record became
# (its position is stored in that same transaction); after that nothing reads the raw topic again. What it
# must outlast is an ingest that cannot read: the consumer-lag alert fires within minutes, and six hours lets
# an operator restore ingest (or its database, which then re-reads what it lost) before records age out. The
# segment rolls hourly so that retention can delete it: a record is gone at most seven hours after it arrived.
RAW_RETENTION_MS = 6 * 3600 * 1000
RAW_SEGMENT_MS = 3600 * 1000


def raw_topic(provider_id: str) -> TopicSpec:
    """A provider's own raw topic: its input, kept only as long as recovery needs (RAW_RETENTION_MS)."""
    return TopicSpec(
        RAW_TOPIC_PREFIX + provider_id, 3, retention_ms=RAW_RETENTION_MS, segment_ms=RAW_SEGMENT_MS
    )


def provider_of_raw_topic(topic: str) -> str | None:
    provider = topic.removeprefix(RAW_TOPIC_PREFIX)
    return provider if provider != topic and provider else None


# A register holder that produces to Kafka writes its extracts to its own raw topic (a literal ACL, as a
# provider's), one part of an extract per record, and reads its receipts from its own receipts topic. Raw
# extracts hold personnummer in clear: they age out as providers' raw topics do.
REGISTER_RAW_PREFIX = "registers.extracts.raw.v1."
REGISTER_RAW_PATTERN = REGISTER_RAW_PREFIX + "{register}"
REGISTER_RECEIPTS_PREFIX = "registers.receipts.v1."
REGISTER_RECEIPTS_RETENTION_MS = 14 * 24 * 3600 * 1000  # two weeks to read them: they hold no personnummer
# An extract part of a few thousand rows, and the receipts of one; the producer's max.request.size must match.
REGISTER_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def register_raw_topic(register_id: str) -> TopicSpec:
    return TopicSpec(
        REGISTER_RAW_PREFIX + register_id,
        1,  # the parts of an extract in the order they were sent, so its coverage counts after its rows
        retention_ms=RAW_RETENTION_MS,
        segment_ms=RAW_SEGMENT_MS,
        max_message_bytes=REGISTER_MAX_MESSAGE_BYTES,
    )


def register_receipts_topic(register_id: str) -> TopicSpec:
    return TopicSpec(
        REGISTER_RECEIPTS_PREFIX + register_id,
        1,
        retention_ms=REGISTER_RECEIPTS_RETENTION_MS,
        max_message_bytes=REGISTER_MAX_MESSAGE_BYTES,
    )


def register_of_raw_topic(topic: str) -> str | None:
    register = topic.removeprefix(REGISTER_RAW_PREFIX)
    return register if register != topic and register else None


def topics_table() -> str:
    """Every topic's layout as docs/architecture.md states it (a unit test keeps the two the same)."""
    lines = ["| topic | partitions | kept | largest message |", "|---|---|---|---|"]
    per_party = [
        raw_topic("<provider id>"),
        register_raw_topic("<register id>"),
        register_receipts_topic("<register id>"),
    ]
    for spec in (*ALL_TOPICS, *per_party):
        if spec.compacted:
            kept = "compacted"
        elif spec.retention_ms < 0:
            kept = "forever"
        elif spec.retention_ms % (24 * 3600 * 1000) == 0:
            kept = f"{spec.retention_ms // (24 * 3600 * 1000)} days"
        else:
            kept = f"{spec.retention_ms // (3600 * 1000)} h"
        size = f"{spec.max_message_bytes // (1024 * 1024)} MB" if spec.max_message_bytes else "1 MB"
        lines.append(f"| `{spec.name}` | {spec.partitions} | {kept} | {size} |")
    return "\n".join(lines)
