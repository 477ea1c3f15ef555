"""The long fault-injection run (`make soak`): 100,000+ events, every service killed twice, the broker and the
database restarted, a consumer paused past its session timeout."""

from __future__ import annotations

import json

import pytest

from ..faults import run_scenario
from .test_faults import fault_stack  # noqa: F401 - the same stack fixture

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.soak, pytest.mark.timeout(1800)]

SOAK_FAULTS = [
    "kill:ingest",
    "kill:measures",
    "kill:contracts",
    "kill:gateway",
    "restart:kafka",
    "pause:measures",
    "kill:measures",
    "restart:postgres",
    "kill:contracts",
    "kill:ingest",
    "kill:gateway",
    "restart:kafka",
]


async def test_soak_100k_events_with_faults(fault_stack, infra, artifacts, record_property) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    report = await run_scenario(
        fault_stack, infra, subjects=25_000, seed=2026, rate=700, faults=SOAK_FAULTS, artifacts=artifacts
    )
    print("\n" + json.dumps(report.__dict__, indent=1))
    for key, value in report.__dict__.items():
        record_property(key, value)
    assert report.events >= 100_000
    assert report.lost_events == 0
    assert report.fact_mismatches == 0
    assert report.missing_payments == 0
    assert report.doubled_payment_ids == 0
    assert report.duplicate_deliveries == 0  # payments.v1 read_committed: each ledger entry once
    assert report.ledger_entries_not_on_topic == 0 and report.topic_entries_not_in_ledger == 0
