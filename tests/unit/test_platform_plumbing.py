"""The background-loop policy (no failure, transient or a bug, ends a loop and with it the service), and the\nrelay's partitioner."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from utfall_platform import metrics
from utfall_platform.background import run_periodically
from utfall_platform.outbox import cached_key_partitioner


def errors(task: str, kind: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "utfall_background_errors_total", {"service": "unit", "task": task, "kind": kind}
    )
    return value or 0.0


async def test_a_loop_outlives_transient_faults_and_bugs_and_counts_them_apart() -> None:
    failures: list[BaseException] = [
        asyncpg.exceptions.InternalClientError("connection died mid-protocol"),  # a database restart
        KafkaConnectionError(),
        KeyError("a bug in a sampler"),
    ]
    rounds = 0
    cleanups = 0
    done = asyncio.Event()

    async def step() -> None:
        nonlocal rounds
        rounds += 1
        if failures:
            raise failures.pop(0)
        done.set()

    async def after_failure() -> None:
        nonlocal cleanups
        cleanups += 1
        raise RuntimeError("a clean-up that fails does not end the loop either")

    loop = asyncio.create_task(
        run_periodically(step, every_seconds=0.001, service="unit", task="t1", after_failure=after_failure)
    )
    await asyncio.wait_for(done.wait(), 5)
    assert not loop.done()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert rounds >= 4 and cleanups == 3
    assert errors("t1", "transient") == 2
    assert errors("t1", "error") == 1


async def test_cancelling_a_loop_is_not_counted_as_a_failure() -> None:
    started = asyncio.Event()

    async def step() -> None:
        started.set()
        await asyncio.sleep(10)

    loop = asyncio.create_task(run_periodically(step, every_seconds=1, service="unit", task="t2"))
    await started.wait()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert errors("t2", "transient") == errors("t2", "error") == 0


@given(st.binary(min_size=0, max_size=64), st.integers(min_value=1, max_value=64))
def test_the_cached_partitioner_puts_every_key_where_the_default_one_does(
    key: bytes, partitions: int
) -> None:
    all_partitions = list(range(partitions))
    expected = DefaultPartitioner()(key, all_partitions, all_partitions)
    assert cached_key_partitioner(key, all_partitions, all_partitions) == expected
    assert cached_key_partitioner(key, all_partitions, all_partitions) == expected  # from the cache


def test_the_cached_partitioner_spreads_keyless_records_over_available_partitions() -> None:
    assert {cached_key_partitioner(None, [0, 1, 2], [2]) for _ in range(20)} == {2}


def test_collector_pauses_are_timed_once_per_process_and_thresholds_come_from_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from utfall_platform.settings import PlatformSettings

    assert PlatformSettings().gc_thresholds == (50_000, 20, 10)
    monkeypatch.setenv("UTFALL_GC_THRESHOLDS", "[700,10,10]")
    assert PlatformSettings().gc_thresholds == (700, 10, 10)  # Python's default, for a comparison

    def observed() -> float:
        value = metrics.registry.get_sample_value("utfall_gc_pause_seconds_count", {"generation": "2"})
        return value or 0.0

    try:
        metrics.observe_gc_pauses()
        metrics.observe_gc_pauses()
        assert gc.callbacks.count(metrics._time_collection) == 1
        before = observed()
        gc.collect()
        assert observed() == before + 1
    finally:
        while metrics._time_collection in gc.callbacks:
            gc.callbacks.remove(metrics._time_collection)
