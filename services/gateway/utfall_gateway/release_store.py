"""Releases as the gateway keeps them: `releases.v1` followed into memory (every replica has them all), and
written with a producer that compresses (a measure's tables are one record)."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from utfall_events.releases import (
    ReleaseAuditV1,
    ReleaseCommentV1,
    ReleasedCellV1,
    ReleaseMeasureV1,
    ReleaseRecordV1,
    ReleaseV1,
    audit_key,
    comment_key,
    key_prefix,
    manifest_key,
    measure_key,
)
from utfall_events.topics import RELEASE_MAX_BYTES, RELEASES
from utfall_platform.compacted import CompactedTable
from utfall_platform.kafka_access import KafkaAccess


class ReleaseStore(CompactedTable[ReleaseRecordV1]):
    def __init__(self, kafka: KafkaAccess, service: str = "gateway", deployment: str = "") -> None:
        super().__init__(kafka, RELEASES, ReleaseRecordV1, service)
        self.deployment = deployment
        self._prefix = key_prefix(deployment).encode()

    def _apply(self, rows: dict[str, ReleaseRecordV1], key: bytes | None, value: bytes | None) -> None:
        if key is not None and key.startswith(self._prefix):  # another deployment's releases are not ours
            super()._apply(rows, key, value)

    def manifest_key(self, number: int) -> str:
        return manifest_key(number, self.deployment)

    def measure_key(self, number: int, measure_id: str) -> str:
        return measure_key(number, measure_id, self.deployment)

    def manifests(self) -> list[ReleaseV1]:
        """Every complete release, newest first. A manifest is written after its measures' records, so one
        whose records are not all here yet (a write under way) is not listed."""
        found = []
        for record in self.rows.values():
            release = record.root
            if isinstance(release, ReleaseV1) and all(
                self.measure_key(release.release, m.measure_id) in self.rows for m in release.measures
            ):
                found.append(release)
        return sorted(found, key=lambda r: r.release, reverse=True)

    def manifest(self, number: int) -> ReleaseV1 | None:
        return next((r for r in self.manifests() if r.release == number), None)

    def latest(self) -> ReleaseV1 | None:
        releases = self.manifests()
        return releases[0] if releases else None

    def measure(self, number: int, measure_id: str) -> ReleaseMeasureV1 | None:
        record = self.rows.get(self.measure_key(number, measure_id))
        return record.root if record is not None and isinstance(record.root, ReleaseMeasureV1) else None

    def audit_key(self, number: int) -> str:
        return audit_key(number, self.deployment)

    def audit(self, number: int) -> ReleaseAuditV1 | None:
        """What a release's disclosure audit saw: for the next audit only, never for a reader."""
        record = self.rows.get(self.audit_key(number))
        return record.root if record is not None and isinstance(record.root, ReleaseAuditV1) else None

    def cells(self, release: ReleaseV1) -> list[ReleasedCellV1]:
        """Every cell of a complete release, measure by measure."""
        out: list[ReleasedCellV1] = []
        for m in release.measures:
            measure = self.measure(release.release, m.measure_id)
            assert measure is not None  # a listed release has every measure (manifests)
            for cells in measure.tables.values():
                out.extend(cells)
        return out

    def highest(self) -> int:
        numbers = [r.root.release for r in self.rows.values() if not isinstance(r.root, ReleaseCommentV1)]
        return max(numbers, default=0)

    def comment_key(self, comment_id: str) -> str:
        return comment_key(comment_id, self.deployment)

    def comments(self, provider_id: str | None = None) -> list[ReleaseCommentV1]:
        """Providers' comments, newest first; one provider's when named."""
        found = [
            r.root
            for r in self.rows.values()
            if isinstance(r.root, ReleaseCommentV1) and provider_id in (None, r.root.provider_id)
        ]
        return sorted(found, key=lambda c: (c.created_at, c.comment_id), reverse=True)

    async def publish(self, records: Sequence[tuple[str, BaseModel]]) -> None:
        """Write in order (measures, then the manifest), each acknowledged by every replica of the topic."""
        producer = AIOKafkaProducer(
            **self.kafka.client_options(),
            acks="all",
            enable_idempotence=True,
            compression_type="gzip",
            max_request_size=RELEASE_MAX_BYTES,
        )
        await producer.start()
        try:
            for key, record in records:
                await producer.send_and_wait(
                    self.topic, key=key.encode(), value=record.model_dump_json().encode()
                )
        finally:
            await producer.stop()
        await self.refresh(timeout=10.0)
