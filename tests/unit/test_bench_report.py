"""`make bench` never ends without the JSON of what it measured (issue 20): each step is written as it
completes, and a run that dies leaves the finished steps and the reason it stopped."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks import run


def test_a_run_that_dies_keeps_its_finished_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen_on_disk: list[dict[str, Any]] = []

    async def dies_in_the_latency_step(args: Any, report: dict[str, Any]) -> dict[str, Any]:
        report["steps"]["floor"] = {"floor_per_s": 50_000, "produce_per_s": 60_000}
        (written,) = tmp_path.glob("bench-smoke-*.json")
        seen_on_disk.append(json.loads(written.read_text()))  # on disk before the next step starts
        report["steps"]["http_ingest"] = {"ratio_to_floor": 0.1, "events_per_s": 5_000}
        raise httpx.ReadError("connection reset by peer")

    monkeypatch.setattr(run, "main_async", dies_in_the_latency_step)
    monkeypatch.setattr(sys, "argv", ["run", "--smoke", "--no-progress", "--out", str(tmp_path)])
    with pytest.raises(httpx.ReadError):
        run.main()
    (path,) = tmp_path.glob("bench-smoke-*.json")
    report = json.loads(path.read_text())
    assert seen_on_disk[0]["steps"] == {"floor": {"floor_per_s": 50_000, "produce_per_s": 60_000}}
    assert set(report["steps"]) == {"floor", "http_ingest"}
    assert report["error"] == "ReadError: connection reset by peer" and report["finished_at"]
    assert not list(tmp_path.glob("*.tmp"))
    progress = capsys.readouterr().err  # not a terminal, and still a line per step
    assert "floor done: floor_per_s 50000" in progress and "stopped early (ReadError" in progress


@pytest.mark.asyncio
async def test_a_transient_client_error_is_retried_and_counted() -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.ReadError("reset", request=request)
        return httpx.Response(202, json={"accepted": 1})

    errors: list[str] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(flaky), base_url="http://ingest") as client:
        response = await run.post_retrying(client, "/v1/events", content=b"[]", headers={}, errors=errors)
    assert response is not None and response.status_code == 202 and errors == ["ReadError", "ReadError"]
