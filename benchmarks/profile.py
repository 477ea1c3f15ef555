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

import asyncpg

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


# Postgres is a third of the pipeline's CPU: the profiled run also counts its statements.
POSTGRES_SETTINGS = ("shared_preload_libraries=pg_stat_statements", "pg_stat_statements.max=2000")


async def reset_statements(superuser_dsn: str) -> None:
    conn = await asyncpg.connect(superuser_dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def top_statements(superuser_dsn: str, top: int = 12) -> dict[str, Any]:
    """The statements of the step by total execution time (the server's time, waits included), with what
    share of all statements' time each took."""
    conn = await asyncpg.connect(superuser_dsn)
    try:
        rows = await _statements(conn, top)
    finally:
        await conn.close()
    total = float(rows[0]["everything"]) if rows else 0.0
    return {
        "total_exec_seconds": round(total / 1000, 2),
        "top": [
            {
                "pct": round(100 * float(r["total_exec_time"]) / (total or 1.0), 1),
                "calls": int(r["calls"]),
                "mean_ms": round(float(r["total_exec_time"]) / max(1, int(r["calls"])), 2),
                "rows": int(r["rows"]),
                "query": " ".join(str(r["query"]).split())[:150],
            }
            for r in rows
        ],
    }


async def _statements(conn: asyncpg.Connection, top: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT query, calls, total_exec_time, rows, sum(total_exec_time) OVER () AS everything "
        "FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' "
        "ORDER BY total_exec_time DESC LIMIT $1",
        top,
    )


def statements_text(statements: dict[str, Any]) -> str:
    lines = [f"  postgres: {statements['total_exec_seconds']} s of statement execution (pg_stat_statements)"]
    for s in statements["top"][:10]:
        lines.append(f"    {s['pct']:>5}%  {s['calls']:,} calls, {s['mean_ms']} ms each: {s['query']}")
    return "\n".join(lines)
