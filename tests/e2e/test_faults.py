"""Reliability on the real stack: SIGKILL of every service, a broker restart, a database restart and a consumer
paused past its session timeout, while a seeded stream flows; then nothing lost, nothing doubled. The long
variant (100,000 events) runs with `make soak`."""

from __future__ import annotations

import asyncio
import json

import pytest
import pytest_asyncio

from utfall_platform.local.stack import LocalStack
from utfall_synthetic.cohort import PROVIDERS

from ..faults import contract_yaml, run_scenario
from ..helpers import uid

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHORT_FAULTS = ["kill:ingest", "kill:measures", "restart:kafka", "kill:contracts", "restart:postgres",
                "kill:gateway", "pause:measures"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fault_stack(world, infra, tmp_path_factory, artifacts):  # type: ignore[no-untyped-def]
    if infra.local_kafka is None or infra.local_postgres is None:
        pytest.skip("broker and database restarts need the locally started Kafka and Postgres")
    suffix = world.name[-6:]
    contracts_dir = tmp_path_factory.mktemp("contracts")
    contract_id = uid("faults-")
    (contracts_dir / "faults.yaml").write_text(contract_yaml(contract_id, [f"{p.provider_id}-{suffix}" for p in PROVIDERS]))
    sink = (artifacts / f"{world.name}.log").open("w")
    stack = LocalStack(tmp_path_factory.mktemp("stack"), kafka_bootstrap=world.bootstrap,
                       database_url=world.database_url, gateway_database_url=world.gateway_database_url,
                       log_sink=sink, extra_env={**world.env(), "UTFALL_CONTRACTS_DIR": str(contracts_dir)})
    loop = asyncio.get_running_loop()
    for name in ("ingest", "measures", "contracts", "gateway"):
        stack.start_service(name)
    await loop.run_in_executor(None, stack.wait_ready)
    stack.world = world  # type: ignore[attr-defined]
    stack.contract_id = contract_id  # type: ignore[attr-defined]
    yield stack
    await loop.run_in_executor(None, stack.stop)
    sink.close()


async def test_faults_lose_and_double_nothing(fault_stack, infra, artifacts, record_property) -> None:  # type: ignore[no-untyped-def]
    report = await run_scenario(fault_stack, infra, subjects=1500, seed=31, rate=150, faults=SHORT_FAULTS,
                                artifacts=artifacts)
    print("\n" + json.dumps(report.__dict__, indent=1))
    for key, value in report.__dict__.items():
        record_property(key, value)
    assert report.faults == SHORT_FAULTS
    assert report.lost_events == 0
    assert report.fact_mismatches == 0
    assert report.missing_payments == 0
    assert report.doubled_payment_ids == 0
    assert report.ledger_entries > 0
