"""Session fixtures: real Kafka and Postgres (see tests/infra.py), test worlds, in-process services."""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from .infra import Infra, World, new_world, start_infra

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
ARTIFACTS = Path(__file__).parent / "artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tier markers from the folder a test lives in."""
    for item in items:
        path = str(item.fspath)
        for tier in ("unit", "integration", "e2e"):
            if f"{os.sep}{tier}{os.sep}" in path and not item.get_closest_marker(tier):
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    infra = start_infra(tmp_path_factory.mktemp("infra"))
    yield infra
    infra.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(infra: Infra, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:20]
    yield await new_world(infra, prefix)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[object]:
    """The four services as real processes on the session's Kafka and a fresh database."""
    import asyncio

    from utfall_platform.local.stack import LocalStack

    log = ARTIFACTS / f"{world.name}.log"
    ARTIFACTS.mkdir(exist_ok=True)
    sink = log.open("w")
    stack = LocalStack(
        tmp_path_factory.mktemp("stack"),
        kafka=world.cluster,
        database_url=world.database_url,
        gateway_database_url=world.gateway_database_url,
        log_sink=sink,
        extra_env=world.env(),
    )
    loop = asyncio.get_running_loop()
    for name in ("ingest", "measures", "contracts", "gateway"):
        stack.start_service(name)
    await loop.run_in_executor(None, stack.wait_ready)
    stack.world = world  # type: ignore[attr-defined]
    yield stack
    await loop.run_in_executor(None, stack.stop)
    sink.close()
