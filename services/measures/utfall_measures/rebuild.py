"""Rebuild: drop the projection and replay `care.events.v1` from the beginning, with a progress bar.

1. Take the projection lock exclusively (a running measures service holds it shared: stop it first).
2. Empty events and episodes, forget the consumer's positions, mark a rebuild as under way.
3. Replay every committed record up to the end offsets seen at the start (COPY into a staging table,
   then one set-based insert that skips duplicates).
4. Re-fold every subject from Postgres in worker processes (one per core), each taking the subjects whose
   hash falls in its share, chunk by chunk, and diff the facts against the stored ones: only facts whose
   status changes (say, under a new measure definition) get a new revision and an outcome message.
Memory stays bounded at any size: the replay holds one batch of records, each worker one chunk of subjects.
5. Store the positions at those end offsets and clear the mark, so the service resumes right after.
A rebuild that dies half-way leaves the mark; the service finishes step 4 itself on its next start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import TextIO

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from tqdm import tqdm

from utfall_events.codec import UndecodableEvent
from utfall_events.topics import CARE_EVENTS
from utfall_platform import locks
from utfall_platform.clock import Clock, clock_from_offset_days
from utfall_platform.db import connect, create_pool
from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.positions import forget_positions, set_positions

from . import store
from .incoming import Incoming
from .projection import SCHEMA, decode, refold_closure
from .settings import MeasuresSettings

log = logging.getLogger(__name__)
WORKER_DSN = "UTFALL_REBUILD_DATABASE_URL"  # the fold workers' database, in their environment (not in `ps`)
CONSUMER = "measures-care-events"
PROJECTION_LOCK = locks.MEASURES_PROJECTION


@dataclass
class RebuildReport:
    records: int = 0
    events: int = 0
    undecodable: int = 0
    subjects: int = 0
    published: int = 0
    workers: int = 0
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
) -> dict[int, int]:
    """Copy every committed record into measures.events, one batch in memory at a time."""
    consumer = AIOKafkaConsumer(
        **kafka.client_options(),
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    copying: asyncio.Task[None] | None = None  # the previous batch's COPY runs while this one is decoded
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
        rows: list[Incoming] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_size)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    report.records += 1
                    try:
                        rows.append(decode(record))
                    except UndecodableEvent:
                        report.undecodable += 1
                bar.update(len(records))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if len(rows) >= batch_size or not remaining:
                if copying is not None:
                    await copying
                copying = asyncio.create_task(_replay_batch(pool, rows))
                rows = []
        if copying is not None:
            await copying
        async with pool.acquire() as conn:
            report.events = await store.count_events(conn)
        bar.close()
        return {tp.partition: ends[tp] for tp in tps}
    finally:
        if copying is not None and not copying.done():
            copying.cancel()
        await consumer.stop()


async def _replay_batch(pool: asyncpg.Pool, rows: list[Incoming]) -> None:
    async with pool.acquire() as conn:
        await store.replay_events(conn, rows)


async def fold_share(
    dsn: str, share: int, shares: int, *, today: date, now: datetime, chunk: int, report: TextIO
) -> None:
    """A worker process's part: re-fold the subjects whose hash falls in its share, chunk by chunk, each chunk
    in its own transaction, writing a progress line per chunk. It holds one chunk's events at a time."""
    conn = await connect(dsn)
    try:
        after = ""
        while part := await store.subjects_of_share(conn, share, shares, after=after, limit=chunk):
            after = part[-1]
            for attempt in range(1, 11):
                try:
                    async with conn.transaction():
                        result = await refold_closure(conn, set(part), today=today, now=now)
                    break
                except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                    # an episode whose events name subjects of two shares (a corrected subject) is folded by
                    # both workers; they can meet on its locks. The chunk rolled back whole: fold it again.
                    if attempt == 10:
                        raise
                    await asyncio.sleep(0.05 * attempt)
            print(json.dumps({"subjects": len(part), "published": result.published}), file=report, flush=True)
    finally:
        await conn.close()


async def refold_all(
    dsn: str,
    today: date,
    now: datetime,
    *,
    progress: bool,
    report: RebuildReport,
    workers: int,
    chunk: int = 2000,
) -> None:
    """Re-fold every subject in `workers` processes (this module run with --fold-share), each taking the
    subjects whose hash falls in its share. A worker that fails ends the rebuild with its exit code."""
    env = {**os.environ, WORKER_DSN: dsn}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "utfall_measures.rebuild",
            f"--fold-share={share}/{workers}",
            f"--today={today.isoformat()}",
            f"--now={now.isoformat()}",
            f"--chunk={chunk}",
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        for share in range(workers)
    ]
    bar = tqdm(unit="subject", desc="re-fold subjects", disable=not progress, file=sys.stderr)

    async def follow(process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            done = json.loads(line)
            report.subjects += done["subjects"]
            report.published += done["published"]
            bar.update(done["subjects"])
        if await process.wait() != 0:
            raise RuntimeError(
                f"a rebuild worker failed (exit code {process.returncode}); see its error above"
            )

    try:
        await asyncio.gather(*(follow(p) for p in processes))
    finally:
        bar.close()
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def rebuild(
    settings: MeasuresSettings, clock: Clock, *, progress: bool = True, workers: int | None = None
) -> RebuildReport:
    """Replay `care.events.v1` into an emptied projection, then re-fold every subject from Postgres in
    `workers` processes (default: one per core). Memory stays bounded: the replay holds one batch, each worker
    one chunk of subjects."""
    report = RebuildReport()
    dsn = settings.database_url.get_secret_value()
    lock_conn = await asyncpg.connect(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", PROJECTION_LOCK):
            raise SystemExit("the measures service is running: stop it before a rebuild")
        async with pool.acquire() as conn, conn.transaction():
            await store.empty_projection(conn, marked=True)
            await forget_positions(conn, SCHEMA, CONSUMER)
        started = time.perf_counter()
        ends = await replay(pool, settings.kafka, progress=progress, report=report)
        report.replay_seconds = time.perf_counter() - started
        started = time.perf_counter()
        report.workers = workers or os.cpu_count() or 2
        # one today and one now for every worker: the facts of a rebuild are determined at one instant
        await refold_all(
            dsn, clock.today(), clock.now(), progress=progress, report=report, workers=report.workers
        )
        report.fold_seconds = time.perf_counter() - started
        async with pool.acquire() as conn, conn.transaction():
            await set_positions(conn, SCHEMA, CONSUMER, CARE_EVENTS, ends)
            await store.rebuild_done(conn)
        return report
    finally:
        await pool.close()
        await lock_conn.close()


async def finish_interrupted_rebuild(pool: asyncpg.Pool, clock: Clock) -> bool:
    """Called by the service at start: a rebuild that died after its replay is completed here."""
    if not await store.rebuild_under_way(pool):
        return False
    log.warning("an interrupted rebuild is being completed: replaying from the beginning and re-folding")
    async with pool.acquire() as conn, conn.transaction():
        await store.empty_projection(conn, marked=False)
        await forget_positions(conn, SCHEMA, CONSUMER)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="utfall-measures-rebuild",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--workers", type=int, default=None, help="processes that re-fold subjects (default: one per core)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    # a fold worker, started by the rebuild itself: share i/n, the rebuild's today and now
    parser.add_argument("--fold-share", help=argparse.SUPPRESS)
    parser.add_argument("--today", type=date.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--now", type=datetime.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=2000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.fold_share:
        share, shares = (int(n) for n in args.fold_share.split("/"))
        asyncio.run(
            fold_share(
                os.environ[WORKER_DSN],
                share,
                shares,
                today=args.today,
                now=args.now,
                chunk=args.chunk,
                report=sys.stdout,
            )
        )
        return
    settings = MeasuresSettings()
    report = asyncio.run(
        rebuild(
            settings,
            clock_from_offset_days(settings.clock_offset_days),
            progress=not args.no_progress,
            workers=args.workers,
        )
    )
    if args.json:
        print(json.dumps({**asdict(report), "seconds": report.seconds}))
        return
    print(
        f"rebuilt from {report.records} records ({report.events} events, {report.undecodable} undecodable) "
        f"of {report.subjects} subjects in {report.seconds:.1f}s (replay {report.replay_seconds:.1f}s, "
        f"fold {report.fold_seconds:.1f}s); {report.published} outcome facts changed"
    )


if __name__ == "__main__":
    main()
