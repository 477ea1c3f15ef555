"""`make soak`: the measures rebuild streams in bounded memory. Four times the history, run as an operator
runs it (its own process and its fold workers, their memory summed), needs no more memory, and stays far
under 2 GB."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import asyncpg
import pytest

from benchmarks.load import ResourceSampler, published_records
from benchmarks.run import events_for, produce_all
from utfall_events.topics import CARE_EVENTS

from ..helpers import migrate_service

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.soak, pytest.mark.timeout(1800)]


async def rebuilt(world, workers: int) -> tuple[dict[str, float], float]:  # type: ignore[no-untyped-def]
    env = {**os.environ, **world.env(), **world.cluster.principal("measures").env()}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "utfall_measures.rebuild",
        "--json",
        "--no-progress",
        f"--workers={workers}",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    with ResourceSampler({"rebuild": process.pid}, interval=0.2) as sampler:
        output, _ = await process.communicate()
    assert process.returncode == 0
    return json.loads(output.splitlines()[-1]), sampler.summary()["rebuild"]["rss_mb_max"]


async def test_rebuild_memory_does_not_grow_with_the_history(world, record_property) -> None:  # type: ignore[no-untyped-def]
    pool = await asyncpg.create_pool(world.database_url, min_size=1, max_size=1)
    try:
        await migrate_service(pool, "measures")
    finally:
        await pool.close()
    runs = []
    for n, seed in ((50_000, 71), (150_000, 72)):  # the history grows from 50,000 records to 200,000
        records = list(published_records(events_for(n, seed, f"mem{seed}-{world.name[-6:]}")))
        await produce_all(world.kafka, CARE_EVENTS, records, desc="fill", progress=False)
        del records
        runs.append(await rebuilt(world, workers=2))
    (small, small_peak), (large, large_peak) = runs
    print(
        f"\nrebuild peaks: {small['records']:,} records {small_peak:.0f} MB; {large['records']:,} {large_peak:.0f} MB"
    )
    record_property("rebuild_peak_mb", [small_peak, large_peak])
    assert large["records"] >= small["records"] * 3.5 and large["subjects"] > small["subjects"] * 3
    assert large_peak < 2048
    assert large_peak < small_peak * 1.3 + 50  # bounded: the memory does not follow the history's size
