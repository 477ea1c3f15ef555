"""Every PromQL expression of every Grafana dashboard, evaluated by a real Prometheus that scrapes the running
stack while synthetic events flow: none may error or come back empty."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from utfall_platform.local.paths import free_port
from utfall_platform.local.procs import spawn, terminate
from utfall_synthetic.cli import post_events
from utfall_synthetic.cohort import PROVIDERS, CohortConfig, generate

from ..helpers import create_key

pytestmark = pytest.mark.asyncio(loop_scope="session")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def expressions() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((path.stem, panel["title"], target["expr"]))
    return out


async def test_every_dashboard_query_returns_series(stack, tmp_path, artifacts) -> None:  # type: ignore[no-untyped-def]
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is needed (scripts/bootstrap.sh --system installs it)"
    port = free_port()
    targets = [
        {"targets": [f"127.0.0.1:{svc.port}"], "labels": {"service": name}}
        for name, svc in stack.services.items()
    ]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "rules.yml")],
        "scrape_configs": [{"job_name": "utfall", "static_configs": targets}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = spawn(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    world = stack.world
    try:
        keys = {
            p.provider_id: await create_key(world.kafka, "provider", provider_id=p.provider_id)
            for p in PROVIDERS
        }
        cohort = generate(CohortConfig(subjects=800, seed=8080, today=date(2026, 10, 31)))
        bad = dict(cohort.events[0], id="broken", data={"episode_id": "x"})
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as http:

            async def scraping() -> bool:
                up = (await http.get(f"{base}/api/v1/query", params={"query": "sum(up)"})).json()
                return bool(up.get("data", {}).get("result")) and up["data"]["result"][0]["value"][1] == "4"

            deadline = time.monotonic() + 60
            while not await _safe(scraping) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            # a steady flow of about 20 s, so every rate and quantile has samples on both sides of it
            flowing = asyncio.create_task(
                post_events(
                    stack.services["ingest"].url, keys, [*cohort.events, bad], batch=50, rate=160, quiet=True
                )
            )
            gateway = stack.services["gateway"].url
            while not flowing.done():
                await http.get(f"{gateway}/v1/comparisons/planned_discharge")
                await http.get(f"{gateway}/v1/measures")
                await asyncio.sleep(0.3)
            await flowing
            await asyncio.sleep(4)  # gauges sampled after the flow (facts, caps) reach Prometheus
            results: list[dict[str, Any]] = []
            failures = []
            for dash, title, expr in expressions():
                response = await http.get(f"{base}/api/v1/query", params={"query": expr})
                body = response.json()
                series = body.get("data", {}).get("result", []) if body.get("status") == "success" else []
                results.append(
                    {
                        "dashboard": dash,
                        "panel": title,
                        "expr": expr,
                        "status": body.get("status"),
                        "series": len(series),
                        "sample": [(s["metric"], s["value"][1]) for s in series[:4]],
                    }
                )
                finite = [s for s in series if s["value"][1] not in ("NaN", "+Inf", "-Inf")]
                if body.get("status") != "success" or not finite:
                    failures.append((dash, title, expr, body.get("error") or "no series with a value"))
            rules = (await http.get(f"{base}/api/v1/rules")).json()
        (artifacts / "dashboard-queries.json").write_text(json.dumps(results, indent=1))
        assert not failures, failures
        groups = rules["data"]["groups"]
        shipped = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())["groups"]
        assert sum(len(g["rules"]) for g in groups) == sum(len(g["rules"]) for g in shipped)
        assert all(r["health"] == "ok" for g in groups for r in g["rules"])
    finally:
        terminate(prometheus)


async def _safe(check: Any) -> bool:
    try:
        return bool(await check())
    except httpx.HTTPError:
        return False
