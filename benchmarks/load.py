"""Load helpers for the benchmarks: resource sampling, open-loop HTTP load, published-format event streams."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import statistics
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import orjson
import psutil

from utfall_events.cloudevents import binary_headers


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class ResourceSampler:
    """CPU (% of one core) and resident memory of named processes, sampled in a thread."""

    pids: dict[str, int]
    interval: float = 0.5
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ResourceSampler:
        roots: dict[str, psutil.Process] = {}
        for name, pid in self.pids.items():
            try:
                roots[name] = psutil.Process(pid)
            except psutil.Error:
                continue
        known: dict[int, psutil.Process] = {}

        def measure(proc: psutil.Process) -> tuple[float, float]:
            # cpu_percent needs a first call to prime each process, children (Postgres backends) included
            cached = known.setdefault(proc.pid, proc)
            return cached.cpu_percent(None), cached.memory_info().rss

        for root in roots.values():
            for proc in [root, *root.children(recursive=True)]:
                try:
                    measure(proc)
                except psutil.Error:
                    continue

        def run() -> None:
            while not self._stop.wait(self.interval):
                for name, root in roots.items():
                    cpu = rss = 0.0
                    try:
                        family = [root, *root.children(recursive=True)]
                    except psutil.Error:
                        continue
                    for proc in family:  # Postgres backends come and go: skip the ones gone meanwhile
                        try:
                            c, r = measure(proc)
                        except psutil.Error:
                            continue
                        cpu += c
                        rss += r
                    self.samples.setdefault(name, []).append((cpu, rss / 2**20))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in self.samples.items():
            if values:
                out[name] = {
                    "cpu_pct_mean": round(statistics.fmean(v[0] for v in values), 1),
                    "cpu_pct_max": round(max(v[0] for v in values), 1),
                    "rss_mb_max": round(max(v[1] for v in values), 1),
                }
        return out


async def open_loop(
    url: str,
    *,
    rate: float,
    seconds: float,
    params: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    concurrency: int = 64,
) -> dict[str, Any]:
    """Requests sent at a fixed rate whatever the latency (open loop), latencies measured per request."""
    latencies: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, limits=limits, headers=headers) as client:

        async def one(i: int) -> None:
            nonlocal errors
            async with sem:
                started = time.perf_counter()
                try:
                    response = await client.get(url, params=(params[i % len(params)] if params else None))
                    if response.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                    return
                latencies.append(time.perf_counter() - started)

        tasks = []
        begin = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    return {
        "requests": total,
        "errors": errors,
        "achieved_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round((percentile(latencies, 0.5) or 0) * 1000, 2),
        "p95_ms": round((percentile(latencies, 0.95) or 0) * 1000, 2),
        "p99_ms": round((percentile(latencies, 0.99) or 0) * 1000, 2),
    }


def subject_of(person_id: str) -> str:
    return "v1:" + base64.b32encode(hashlib.sha256(person_id.encode()).digest()).decode().rstrip("=")


def published_records(
    events: Iterable[dict[str, Any]],
) -> Iterable[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """Provider events turned into what ingest would publish on care.events.v1 (for the rebuild benchmark, which
    replays that topic): subject_ref instead of the personnummer, derived fields, CloudEvents headers."""
    episodes: dict[tuple[str, str], str] = {}
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    for event in events:
        provider = event["source"].split("/", 1)[1]
        data = dict(event["data"])
        if event["type"].endswith("placement.started.v1"):
            pn = data.pop("person_id")
            subject = subject_of(pn)
            born = date(int(pn[:4]), int(pn[4:6]), int(pn[6:8]) - (60 if int(pn[6:8]) > 60 else 0))
            start = date.fromisoformat(data["start_date"])
            data.update(
                subject_ref=subject,
                birth_year=born.year,
                sex="male" if int(pn[10]) % 2 else "female",
                age_at_start=start.year - born.year - ((start.month, start.day) < (born.month, born.day)),
            )
            episodes[(provider, data["episode_id"])] = subject
            episode = data["episode_id"]
        elif event["type"].endswith("event.retracted.v1"):
            continue
        else:
            episode = data["episode_id"]
            subject = episodes.get((provider, episode))
            if subject is None:
                continue
            data.update(subject_ref=subject, provider_id=provider)
        headers = binary_headers(
            event_id=event["id"],
            source=event["source"],
            type_=event["type"],
            time=datetime.fromisoformat(event["time"]),
            subject=episode,
            extra={"ingestedat": stamp.isoformat()},
        )
        yield subject.encode(), orjson.dumps(data), headers
