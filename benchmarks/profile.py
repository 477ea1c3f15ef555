"""Where the pipeline's CPU goes: the services' cProfile dumps of one benchmark step, summarised.

Each service writes `<service>-1.pstats` when the benchmark signals the end of the step (see
utfall_platform.profiling). The summary gives, per service, the functions with the most own time and the
own time grouped by where the code lives (our packages, the Kafka and Postgres clients, pydantic, the event
loop), which is what says whether the rest is in our code or in the libraries under it.
"""

from __future__ import annotations

import os
import pstats
import signal
import time
from pathlib import Path
from typing import Any

AREAS = (
    ("utfall_measures.domain", "measures domain (fold, facts)"),
    ("utfall_contracts", "contracts code"),
    ("utfall_measures", "measures service layer"),
    ("utfall_ingest", "ingest code"),
    ("utfall_events", "event schemas and codecs"),
    ("utfall_platform", "platform (consumer, outbox)"),
    ("asyncpg", "asyncpg (Postgres client)"),
    ("aiokafka", "aiokafka (Kafka client)"),
    ("faststream", "faststream"),
    ("pydantic", "pydantic"),
    ("fastapi", "fastapi/starlette/uvicorn"),
    ("starlette", "fastapi/starlette/uvicorn"),
    ("uvicorn", "fastapi/starlette/uvicorn"),
    ("prometheus_client", "prometheus_client"),
    ("asyncio", "event loop (asyncio/uvloop)"),
    ("uvloop", "event loop (asyncio/uvloop)"),
)


def toggle(pids: dict[str, int]) -> None:
    for pid in pids.values():
        os.kill(pid, signal.SIGUSR1)


def wait_for_dumps(directory: Path, services: list[str], timeout: float = 30.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    wanted = [directory / f"{name}-1.pstats" for name in services]
    while time.monotonic() < deadline and not all(p.exists() and p.stat().st_size for p in wanted):
        time.sleep(0.2)
    time.sleep(0.5)  # the last write finishing
    return [p for p in wanted if p.exists()]


def area_of(filename: str, name: str = "") -> str:
    path = filename.replace(os.sep, "/")
    for marker, area in AREAS:
        if f"/{marker}/" in path or f"/{marker}." in path:
            return area
    if (
        filename == "~"
    ):  # a C function: its name says whose it is ("<method 'validate_json' of 'pydantic_core...")
        for marker, area in (
            ("pydantic_core", "pydantic"),
            ("asyncpg", "asyncpg (Postgres client)"),
            ("_asyncio", "event loop (asyncio/uvloop)"),
            ("uvloop", "event loop (asyncio/uvloop)"),
            ("orjson", "orjson"),
        ):
            if marker in name:
                return area
    if filename.startswith("<") or filename == "~":
        return "builtins and other C extensions (re, zlib, lz4, ...)"
    return "other Python"


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(own for (_cc, _nc, own, _cum, _callers) in raw.values()) or 1.0
    by_area: dict[str, float] = {}
    functions = []
    for (filename, line, name), (_cc, calls, own, cumulative, _callers) in raw.items():
        area = area_of(filename, name)
        by_area[area] = by_area.get(area, 0.0) + own
        where = (
            name if filename == "~" else f"{Path(filename).parent.name}/{Path(filename).name}:{line} {name}"
        )
        functions.append((own, cumulative, calls, where))
    functions.sort(reverse=True)
    return {
        "profiled_cpu_seconds": round(total, 2),
        "by_area_pct": {
            a: round(100 * s / total, 1) for a, s in sorted(by_area.items(), key=lambda kv: -kv[1])
        },
        "top_own_time": [
            {
                "function": where,
                "own_pct": round(100 * own / total, 1),
                "cumulative_s": round(cum, 2),
                "calls": n,
            }
            for own, cum, n, where in functions[:top]
        ],
    }


def text(profiles: dict[str, dict[str, Any]]) -> str:
    lines = ["", "Profile of the pipeline step (cProfile, own time; see benchmarks/profile.py):"]
    for service, p in profiles.items():
        lines.append(f"  {service}: {p['profiled_cpu_seconds']} s profiled")
        areas = ", ".join(f"{a} {pct}%" for a, pct in list(p["by_area_pct"].items())[:8])
        lines.append(f"    by area: {areas}")
        for f in p["top_own_time"][:8]:
            lines.append(f"    {f['own_pct']:>5}%  {f['function']}  ({f['calls']:,} calls)")
    return "\n".join(lines)
