"""A compacted topic (keyed records, the newest per key wins) followed live into memory: API keys and the provider
registry are distributed this way, so every service can check them without a database of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel, ValidationError

from .background import record_failure
from .kafka_access import KafkaAccess

log = logging.getLogger(__name__)

Row = TypeVar("Row", bound=BaseModel)


class CompactedTable(Generic[Row]):
    """One single-partition compacted topic as a dict from key to the newest row."""

    def __init__(self, kafka: KafkaAccess, topic: str, model: type[Row], service: str = "") -> None:
        self.kafka = kafka
        self.topic = topic
        self.model = model
        self.service = service
        self.rows: dict[str, Row] = {}
        self.caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._tp = TopicPartition(topic, 0)

    async def run(self) -> None:
        while True:
            # A reconnection reads the compacted topic from the start into a fresh table and swaps it in once
            # caught up, so the rows in use stay valid while the broker is away or being re-read; the first
            # load goes straight into the live table.
            loading: dict[str, Row] | None = {} if self.caught_up.is_set() else None
            try:
                self._consumer = AIOKafkaConsumer(
                    **self.kafka.client_options(),
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                )
                await self._consumer.start()
                self._consumer.assign([self._tp])
                await self._consumer.seek_to_beginning(self._tp)
                while True:
                    batch = await self._consumer.getmany(self._tp, timeout_ms=500)
                    for record in batch.get(self._tp, []):
                        self._apply(self.rows if loading is None else loading, record.key, record.value)
                    if loading is not None or not self.caught_up.is_set():
                        end = (await self._consumer.end_offsets([self._tp]))[self._tp]
                        if await self._consumer.position(self._tp) >= end:
                            if loading is not None:
                                self.rows, loading = loading, None
                            self.caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                record_failure(self.service, self.topic, exc)
                await asyncio.sleep(1.0)
            finally:
                if self._consumer is not None:
                    with contextlib.suppress(Exception):
                        await self._consumer.stop()
                    self._consumer = None

    async def refresh(self, timeout: float = 2.0) -> None:
        """Wait until everything on the topic right now has been read (a row written a moment ago)."""
        consumer = self._consumer
        if consumer is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                end = (await consumer.end_offsets([self._tp]))[self._tp]
                while await consumer.position(self._tp) < end:
                    await asyncio.sleep(0.01)

    async def load(self, timeout: float = 30.0) -> None:
        """Read the whole topic once (a command-line tool's view), then stop following it."""
        task = asyncio.create_task(self.run())
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _apply(self, rows: dict[str, Row], key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode(errors="replace")
        if value is None:
            rows.pop(name, None)
            return
        try:
            rows[name] = self.model.model_validate_json(value)
        except ValidationError:
            # Only operators' tools write these topics; a row they cannot have written is skipped, loudly.
            log.error("%s: unreadable record for key %s ignored", self.topic, name)


async def publish_rows(kafka: KafkaAccess, topic: str, rows: Iterable[tuple[str, BaseModel]]) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, row in rows:
            await producer.send_and_wait(topic, key=key.encode(), value=row.model_dump_json().encode())
    finally:
        await producer.stop()
