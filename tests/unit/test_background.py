"""The background-loop policy: no failure, transient or a bug, ends the loop (and with it the service)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

from utfall_platform import metrics
from utfall_platform.background import run_periodically


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
