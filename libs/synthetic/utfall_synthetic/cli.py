"""`utfall-synthetic`: write a cohort as JSON lines, post it to ingest, or run the demo provider."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from utfall_events.topics import CARE_EVENTS_RAW

from .cohort import CohortConfig, batches, generate


def raw_key(event: dict[str, Any]) -> bytes:
    """Partition by episode: a provider's events of one episode (its retractions included) keep their order."""
    return f"{event['source']}/{event.get('subject') or event['data'].get('episode_id', '')}".encode()


def raw_record(event: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """CloudEvents binary mode for the raw topic: attributes as ce_* headers, data as the JSON value."""
    headers = [(f"ce_{k}", str(v).encode()) for k, v in event.items() if k not in ("data", "datacontenttype")]
    headers.append(("content-type", b"application/json"))
    return orjson.dumps(event["data"]), headers


async def post_events(
    url: str,
    keys: dict[str, str],
    events: list[dict[str, Any]],
    *,
    batch: int = 500,
    rate: float | None = None,
    kafka: str | None = None,
    kafka_providers: set[str] | None = None,
    quiet: bool = False,
) -> dict[str, int]:
    """Send events: batched over HTTP with each provider's key, or to the raw topic for `kafka_providers`."""
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0, "kafka": 0}
    producer = None
    if kafka and kafka_providers:
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True, linger_ms=5)
        await producer.start()
    started = time.monotonic()
    sent = 0
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for chunk in batches(events, batch):
                by_provider: dict[str, list[dict[str, Any]]] = {}
                for event in chunk:
                    by_provider.setdefault(event["source"].removeprefix("provider/"), []).append(event)
                for provider, items in by_provider.items():
                    if producer is not None and kafka_providers and provider in kafka_providers:
                        for event in items:
                            value, headers = raw_record(event)
                            await producer.send(
                                CARE_EVENTS_RAW,
                                value,
                                key=raw_key(event),
                                headers=headers,
                            )
                        counts["kafka"] += len(items)
                        continue
                    response = await client.post(
                        "/v1/events",
                        content=orjson.dumps(items),
                        headers={
                            "content-type": "application/cloudevents-batch+json",
                            "authorization": f"Bearer {keys[provider]}",
                        },
                    )
                    response.raise_for_status()
                    body = response.json()
                    counts["accepted"] += body["accepted"]
                    counts["duplicate"] += body["duplicates"]
                    counts["rejected"] += body["rejected"]
                sent += len(chunk)
                if rate:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                if not quiet:
                    print(f"\rsent {sent}/{len(events)} {counts}", end="", file=sys.stderr, flush=True)
    finally:
        if producer is not None:
            await producer.stop()
    if not quiet:
        print(file=sys.stderr)
    return counts


async def demo(url: str, keys: dict[str, str], kafka: str, subjects: int, rate: float, seed: int) -> None:
    """The demo provider of `make run`: a cohort streamed at a steady rate, then a new small cohort now and then."""
    kafka_providers = {"sis-ljungen"}
    today = date.today()
    cohort = generate(CohortConfig(subjects=subjects, seed=seed, today=today))
    print(
        f"demo provider: streaming {len(cohort.events)} events of {subjects} young people "
        f"at about {rate:.0f} events/s",
        file=sys.stderr,
        flush=True,
    )
    counts = await post_events(
        url,
        keys,
        cohort.events,
        batch=200,
        rate=rate,
        kafka=kafka,
        kafka_providers=kafka_providers,
        quiet=True,
    )
    print(f"demo provider: initial cohort sent: {counts}", file=sys.stderr, flush=True)
    round_ = 0
    while True:
        await asyncio.sleep(10)
        round_ += 1
        more = generate(CohortConfig(subjects=5, seed=seed * 1000 + round_, today=today))
        await post_events(
            url, keys, more.events, batch=100, kafka=kafka, kafka_providers=kafka_providers, quiet=True
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="utfall-synthetic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a cohort as JSON lines (one CloudEvent per line)")
    gen.add_argument("--subjects", type=int, default=1000)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--today", type=date.fromisoformat, default=date.today())
    gen.add_argument("--out", type=Path, default=None)
    post = sub.add_parser("post", help="generate and post a cohort to ingest")
    post.add_argument("--url", default="http://127.0.0.1:8081")
    post.add_argument("--keys", type=Path, required=True, help="JSON file {provider_id: key}")
    post.add_argument("--subjects", type=int, default=1000)
    post.add_argument("--seed", type=int, default=7)
    post.add_argument("--rate", type=float, default=None)
    run = sub.add_parser("demo", help="the demo provider: stream a cohort, then keep sending a little")
    run.add_argument("--url", default="http://127.0.0.1:8081")
    run.add_argument("--kafka", default="127.0.0.1:9092")
    run.add_argument("--keys", type=Path, required=True)
    run.add_argument("--subjects", type=int, default=1500)
    run.add_argument("--rate", type=float, default=300.0)
    run.add_argument("--seed", type=int, default=2026)
    register = sub.add_parser("register", help="register the demo providers in the provider registry")
    register.add_argument("--kafka", default="127.0.0.1:9092")
    args = parser.parse_args(argv)
    if args.command == "register":
        from datetime import UTC, datetime

        from utfall_platform.registry import publish_providers

        from .registry import demo_providers

        providers = demo_providers(datetime.now(UTC))
        asyncio.run(publish_providers(args.kafka, providers))
        print(f"registered {len(providers)} demo providers")
    elif args.command == "generate":
        cohort = generate(CohortConfig(subjects=args.subjects, seed=args.seed, today=args.today))
        out = args.out.open("w") if args.out else sys.stdout
        for event in cohort.events:
            out.write(json.dumps(event, ensure_ascii=False) + "\n")
        if args.out:
            out.close()
            print(
                f"{len(cohort.events)} events ({cohort.unique_events} unique) -> {args.out}", file=sys.stderr
            )
    elif args.command == "post":
        keys = json.loads(args.keys.read_text())
        cohort = generate(CohortConfig(subjects=args.subjects, seed=args.seed, today=date.today()))
        print(asyncio.run(post_events(args.url, keys, cohort.events, rate=args.rate)))
    elif args.command == "demo":
        keys = json.loads(args.keys.read_text())
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(demo(args.url, keys, args.kafka, args.subjects, args.rate, args.seed))


if __name__ == "__main__":
    main()
