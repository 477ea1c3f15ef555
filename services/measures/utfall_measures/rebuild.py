"""Rebuild: drop the projection and replay `care.events.v1` from the beginning, with a progress bar.

1. Take the projection lock exclusively (a running measures service holds it shared: stop it first).
2. Empty events and episodes, forget the consumer's positions, mark a rebuild as under way.
3. Replay every committed record up to the end offsets seen at the start (COPY into a staging table,
   then one set-based insert that skips duplicates).
4. Re-fold every subject and diff the facts against the stored ones: only facts whose status changes
   (say, under a new measure definition) get a new revision and an outcome message.
5. Store the positions at those end offsets and clear the mark, so the service resumes right after.
A rebuild that dies half-way leaves the mark; the service finishes step 4 itself on its next start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from tqdm import tqdm

from utfall_events.codec import UndecodableEvent
from utfall_events.topics import CARE_EVENTS
from utfall_platform import locks
from utfall_platform.clock import Clock, clock_from_offset_days
from utfall_platform.db import create_pool, json_texts
from utfall_platform.kafka_access import KafkaAccess

from .domain.episodes import Episode, StoredEvent, fold_episodes
from .projection import RefoldResult, apply_fold, decode, refold
from .settings import MeasuresSettings

log = logging.getLogger(__name__)
CONSUMER = "measures-care-events"
PROJECTION_LOCK = locks.MEASURES_PROJECTION


@dataclass
class RebuildReport:
    records: int = 0
    events: int = 0
    undecodable: int = 0
    subjects: int = 0
    published: int = 0
    replay_seconds: float = 0.0
    fold_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.replay_seconds + self.fold_seconds


async def replay(
    pool: asyncpg.Pool,
    kafka: KafkaAccess,
    *,
    progress: bool,
    report: RebuildReport,
    batch_size: int = 20000,
    keep: dict[tuple[str, str], list[StoredEvent]] | None = None,
) -> dict[int, int]:
    """Copy every committed record into measures.events; with `keep`, also hold them in memory by episode, so
    the fold that follows need not read them back."""
    consumer = AIOKafkaConsumer(
        **kafka.client_options(),
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(CARE_EVENTS, p) for p in sorted(consumer.partitions_for_topic(CARE_EVENTS) or [])
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        total = sum(ends.values()) - sum((await consumer.beginning_offsets(tps)).values())
        remaining = {tp for tp in tps if ends[tp] > 0}
        bar = tqdm(
            total=total, unit="rec", desc="replay care.events.v1", disable=not progress, file=sys.stderr
        )
        rows: list[tuple[object, ...]] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_size)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    report.records += 1
                    try:
                        incoming = decode(record)
                    except UndecodableEvent:
                        report.undecodable += 1
                        continue
                    e = incoming.event
                    rows.append(
                        (
                            e.source,
                            e.event_id,
                            e.type,
                            e.subject_ref,
                            e.provider_id,
                            e.episode_id,
                            e.time,
                            e.data,
                            incoming.ingested_at,
                        )
                    )
                    if keep is not None:
                        keep.setdefault((e.provider_id, e.episode_id), []).append(e)
                bar.update(len(records))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if len(rows) >= batch_size or not remaining:
                report.events += await _copy_events(pool, rows)
                rows = []
        bar.close()
        return {tp.partition: ends[tp] for tp in tps}
    finally:
        await consumer.stop()


async def _copy_events(pool: asyncpg.Pool, rows: list[tuple[object, ...]]) -> int:
    if not rows:
        return 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staging_events (source text, event_id text, type text, subject_ref text, "
            "provider_id text, episode_id text, time timestamptz, data text, ingested_at timestamptz) "
            "ON COMMIT DELETE ROWS"
        )
        data = json_texts([r[7] for r in rows])
        await conn.copy_records_to_table(
            "staging_events",
            records=[(*r[:7], data[i], r[8]) for i, r in enumerate(rows)],
        )
        result = await conn.execute(
            "INSERT INTO measures.events (source, event_id, type, subject_ref, provider_id, episode_id, time, data, "
            "ingested_at) SELECT source, event_id, type, subject_ref, provider_id, episode_id, time, data::jsonb, "
            "ingested_at FROM staging_events ON CONFLICT DO NOTHING"
        )
    return int(result.split()[-1])


async def refold_all(
    pool: asyncpg.Pool,
    clock: Clock,
    *,
    progress: bool,
    report: RebuildReport,
    chunk: int = 4000,
    workers: int = 2,
    kept: dict[tuple[str, str], list[StoredEvent]] | None = None,
) -> None:
    """Re-fold every subject in chunks; two workers overlap Python's folding with Postgres's writes. With the
    replay's events `kept` in memory, episodes are folded here and nothing is read back."""
    members: dict[str, list[tuple[str, str]]] = {}  # subject -> its episode keys (folded or vanished)
    episodes: dict[tuple[str, str], Episode] = {}
    if kept is not None:
        for key, events in kept.items():
            folded = fold_episodes(events).get(key)
            if folded is not None:
                episodes[key] = folded
            # an episode whose every event was retracted still goes with its subject, so its facts are voided
            members.setdefault(folded.subject_ref if folded else events[0].subject_ref, []).append(key)
        subjects = sorted(members)
    else:
        subjects = [
            r["subject_ref"] for r in await pool.fetch("SELECT DISTINCT subject_ref FROM measures.events")
        ]
    report.subjects = len(subjects)
    bar = tqdm(
        total=len(subjects), unit="subject", desc="re-fold subjects", disable=not progress, file=sys.stderr
    )
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for start in range(0, len(subjects), chunk):
        queue.put_nowait(subjects[start : start + chunk])

    async def fold_part(part: list[str]) -> RefoldResult:
        async with pool.acquire() as conn, conn.transaction():
            if kept is None:
                return await refold(conn, set(part), today=clock.today(), now=clock.now())
            keys = [key for subject in part for key in members[subject]]
            return await apply_fold(
                conn,
                [e for key in keys for e in kept[key]],
                today=clock.today(),
                now=clock.now(),
                episodes={key: episodes[key] for key in keys if key in episodes},
            )

    async def worker() -> None:
        while not queue.empty():
            part = queue.get_nowait()
            for attempt in range(1, 6):
                try:
                    result = await fold_part(part)
                    break
                except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                    # an episode whose events name two subjects (a corrected subject) is read by both their
                    # chunks; the two workers can meet on its row. The chunk's transaction rolled back whole:
                    # fold it again.
                    if attempt == 5:
                        raise
                    await asyncio.sleep(0.05 * attempt)
            report.published += result.published
            bar.update(len(part))

    await asyncio.gather(*(worker() for _ in range(workers)))
    bar.close()


async def rebuild(
    settings: MeasuresSettings, clock: Clock, *, progress: bool = True, in_memory: bool = True
) -> RebuildReport:
    """Replay `care.events.v1` into an emptied projection and re-fold every subject. In memory (the default)
    the replay keeps the events for the fold (about 8 GB per million events, a third faster); otherwise the
    fold reads them back from Postgres, subject by subject."""
    report = RebuildReport()
    dsn = settings.database_url.get_secret_value()
    lock_conn = await asyncpg.connect(dsn)
    pool = await create_pool(dsn, min_size=2, max_size=4)
    try:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", PROJECTION_LOCK):
            raise SystemExit("the measures service is running: stop it before a rebuild")
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("TRUNCATE measures.events, measures.episodes")
            await conn.execute("DELETE FROM measures.consumer_positions WHERE consumer = $1", CONSUMER)
            await conn.execute(
                "INSERT INTO measures.rebuild_marker (id, started_at) VALUES (1, now()) "
                "ON CONFLICT (id) DO UPDATE SET started_at = now()"
            )
        started = time.perf_counter()
        kept: dict[tuple[str, str], list[StoredEvent]] | None = {} if in_memory else None
        ends = await replay(pool, settings.kafka, progress=progress, report=report, keep=kept)
        report.replay_seconds = time.perf_counter() - started
        started = time.perf_counter()
        await refold_all(pool, clock, progress=progress, report=report, kept=kept)
        kept = None
        report.fold_seconds = time.perf_counter() - started
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO measures.consumer_positions (consumer, topic, partition, next_offset) "
                "SELECT $1, $2, p, o FROM unnest($3::int[], $4::bigint[]) AS u(p, o)",
                CONSUMER,
                CARE_EVENTS,
                list(ends),
                list(ends.values()),
            )
            await conn.execute("DELETE FROM measures.rebuild_marker")
        return report
    finally:
        await pool.close()
        await lock_conn.close()


async def finish_interrupted_rebuild(pool: asyncpg.Pool, clock: Clock) -> bool:
    """Called by the service at start: a rebuild that died after its replay is completed here."""
    if not await pool.fetchval("SELECT 1 FROM measures.rebuild_marker"):
        return False
    log.warning("an interrupted rebuild is being completed: replaying from the beginning and re-folding")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("TRUNCATE measures.events, measures.episodes")
        await conn.execute("DELETE FROM measures.consumer_positions WHERE consumer = $1", CONSUMER)
        await conn.execute("DELETE FROM measures.rebuild_marker")
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="utfall-measures-rebuild",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--low-memory",
        action="store_true",
        help="fold from Postgres instead of holding the replayed events in memory (slower, small footprint)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    settings = MeasuresSettings()
    report = asyncio.run(
        rebuild(
            settings,
            clock_from_offset_days(settings.clock_offset_days),
            progress=not args.no_progress,
            in_memory=not args.low_memory,
        )
    )
    print(
        f"rebuilt from {report.records} records ({report.events} events, {report.undecodable} undecodable) "
        f"of {report.subjects} subjects in {report.seconds:.1f}s (replay {report.replay_seconds:.1f}s, "
        f"fold {report.fold_seconds:.1f}s); {report.published} outcome facts changed"
    )


if __name__ == "__main__":
    main()
