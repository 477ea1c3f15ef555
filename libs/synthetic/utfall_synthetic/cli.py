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

from utfall_events.sealed import seal
from utfall_events.topics import raw_topic
from utfall_platform.kafka_access import KafkaAccess

from .cohort import CohortConfig, batches, generate
from .registers import DEMO_REGISTER, register_extract

# the demo provider whose school answers and re-placements the register contradicts most often
CONTRADICTED_PROVIDER = "hvb-granen"


def raw_key(event: dict[str, Any]) -> bytes:
    """Partition by episode: a provider's events of one episode (its retractions included) keep their order."""
    return f"{event['source']}/{event.get('subject') or event['data'].get('episode_id', '')}".encode()


def raw_record(
    event: dict[str, Any], sealed_to: dict[str, Any] | None = None
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """CloudEvents binary mode for the raw topic: attributes as ce_* headers, data as the JSON value. With
    `sealed_to` (ingest's public keys, GET /v1/keys/person-id) a personnummer is sealed to ingest, so the topic
    holds none in clear."""
    headers = [(f"ce_{k}", str(v).encode()) for k, v in event.items() if k not in ("data", "datacontenttype")]
    headers.append(("content-type", b"application/json"))
    data = event["data"]
    if sealed_to is not None and isinstance(data, dict) and isinstance(data.get("person_id"), str):
        data = {**data, "person_id": seal(data["person_id"], sealed_to)}
    return orjson.dumps(data), headers


async def post_events(
    url: str,
    keys: dict[str, str],
    events: list[dict[str, Any]],
    *,
    batch: int = 500,
    rate: float | None = None,
    kafka: dict[str, KafkaAccess] | None = None,
    quiet: bool = False,
    sealed_to: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Send events: batched over HTTP with each provider's key, or, for the providers in `kafka`, to their own
    raw topic as themselves (each provider's Kafka principal may write only its own topic), with personnummer
    sealed to `sealed_to` when given."""
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0, "kafka": 0}
    producers: dict[str, AIOKafkaProducer] = {}
    for provider, access in (kafka or {}).items():
        producers[provider] = AIOKafkaProducer(
            **access.client_options(), acks="all", enable_idempotence=True, linger_ms=5
        )
        await producers[provider].start()
    started = time.monotonic()
    sent = 0
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for chunk in batches(events, batch):
                by_provider: dict[str, list[dict[str, Any]]] = {}
                for event in chunk:
                    by_provider.setdefault(event["source"].removeprefix("provider/"), []).append(event)
                for provider, items in by_provider.items():
                    producer = producers.get(provider)
                    if producer is not None:
                        for event in items:
                            value, headers = raw_record(event, sealed_to)
                            await producer.send(
                                raw_topic(provider).name,
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
        for producer in producers.values():
            await producer.stop()
    if not quiet:
        print(file=sys.stderr)
    return counts


# The demo provider that produces to Kafka (its own raw topic) rather than over HTTP.
DEMO_KAFKA_PROVIDERS = ("sis-ljungen",)


async def ingest_public_keys(url: str) -> dict[str, Any] | None:
    """Ingest's public keys for sealing personnummer (None when it offers none): what a provider that
    produces to Kafka fetches before it seals."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answer = await http.get("/v1/keys/person-id")
    if answer.status_code != 200:
        return None
    keys: dict[str, Any] = answer.json()
    return keys


async def publish_release(gateway: str, operator_key: str, note: str) -> None:
    """What an operator does to open the figures to the public: publish a release (the public sees nothing
    else)."""
    import httpx

    async with httpx.AsyncClient(base_url=gateway, timeout=300) as http:
        answer = await http.post(
            "/v1/releases", json={"note": note}, headers={"authorization": f"Bearer {operator_key}"}
        )
    if answer.status_code in (200, 201):
        body = answer.json()
        print(
            f"demo operator: release {body['release']} ({body.get('audit') or {}})",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(f"demo operator: no release ({answer.status_code}: {answer.text[:200]})", file=sys.stderr)


async def send_register_extract(
    url: str, register_key: str, events: list[dict[str, Any]], today: date
) -> None:
    """What a register holder does: send an extract of its register covering part of the cohort."""
    extract = register_extract(events, today=today, contradicted_provider=CONTRADICTED_PROVIDER)
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        answer = await http.post(
            "/v1/registers/extracts",
            content=orjson.dumps(extract),
            headers={"authorization": f"Bearer {register_key}", "content-type": "application/json"},
        )
    counts = answer.json().get("counts") if answer.status_code == 202 else answer.text[:200]
    print(f"demo register: extract of {len(extract['records'])} rows: {counts}", file=sys.stderr, flush=True)


async def demo(
    url: str,
    keys: dict[str, str],
    kafka: dict[str, KafkaAccess],
    subjects: int,
    rate: float,
    seed: int,
    *,
    gateway: str | None = None,
    operator_key: str | None = None,
    release_every: float = 3600.0,
    releases: int = 24,
    register_key: str | None = None,
) -> None:
    """The demo provider of `make run`: a cohort streamed at a steady rate, then a new small cohort now and then;
    with an operator key, the demo operator publishes a release once the cohort has settled and again every
    `release_every` seconds, `releases` in all (each release is audited against every earlier one, so a demo
    left running does not pile them up)."""
    today = date.today()
    cohort = generate(CohortConfig(subjects=subjects, seed=seed, today=today))
    print(
        f"demo provider: streaming {len(cohort.events)} events of {subjects} young people "
        f"at about {rate:.0f} events/s",
        file=sys.stderr,
        flush=True,
    )
    sealed_to = await ingest_public_keys(url) if kafka else None
    counts = await post_events(
        url,
        keys,
        cohort.events,
        batch=200,
        rate=rate,
        kafka=kafka,
        quiet=True,
        sealed_to=sealed_to,
    )
    print(f"demo provider: initial cohort sent: {counts}", file=sys.stderr, flush=True)
    if register_key:
        await send_register_extract(url, register_key, cohort.events, today)
    loop = asyncio.get_running_loop()
    next_release = loop.time() + 30  # the services have projected the cohort by then
    round_ = 0
    while True:
        await asyncio.sleep(10)
        if gateway and operator_key and releases > 0 and loop.time() >= next_release:
            await publish_release(gateway, operator_key, "Demo")
            next_release = loop.time() + release_every
            releases -= 1
        round_ += 1
        more = generate(CohortConfig(subjects=5, seed=seed * 1000 + round_, today=today))
        await post_events(url, keys, more.events, batch=100, kafka=kafka, quiet=True, sealed_to=sealed_to)


async def register_demo(credentials_file: Path) -> None:
    from datetime import UTC, datetime

    from utfall_platform.kafka_acl import KafkaProvisioner, new_password
    from utfall_platform.local.paths import write_secret
    from utfall_platform.registry import publish_providers
    from utfall_platform.settings import PlatformSettings

    from .registry import demo_providers

    admin = PlatformSettings().kafka
    providers = demo_providers(datetime.now(UTC))
    await publish_providers(admin, providers)
    provisioner = KafkaProvisioner(admin)
    access = {p: await provisioner.provision_provider(p, new_password()) for p in DEMO_KAFKA_PROVIDERS}
    write_secret(
        credentials_file,
        json.dumps(
            {
                p: {"bootstrap": a.bootstrap, "username": a.username, "password": a.password}
                for p, a in access.items()
            }
        ),
    )
    print(f"registered {len(providers)} demo providers; Kafka principals for {', '.join(access)}")


def read_kafka_credentials(path: Path) -> dict[str, KafkaAccess]:
    return {p: KafkaAccess(**values) for p, values in json.loads(path.read_text()).items()}


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
    run.add_argument("--keys", type=Path, required=True)
    run.add_argument(
        "--kafka-credentials", type=Path, help="JSON file {provider_id: {bootstrap, username, password}}"
    )
    run.add_argument("--subjects", type=int, default=1500)
    run.add_argument("--rate", type=float, default=300.0)
    run.add_argument("--seed", type=int, default=2026)
    run.add_argument("--gateway", help="publish releases on this gateway (with --operator-keys)")
    run.add_argument(
        "--operator-keys", type=Path, help="JSON file with the demo's keys ({operator: key, ...})"
    )
    run.add_argument("--release-every", type=float, default=3600.0, help="seconds between demo releases")
    register = sub.add_parser(
        "register",
        help="register the demo providers (Kafka administrator's access from UTFALL_KAFKA_*) and give the "
        "Kafka-producing one its principal",
    )
    register.add_argument("--kafka-credentials", type=Path, required=True, help="where to write them (0600)")
    args = parser.parse_args(argv)
    if args.command == "register":
        asyncio.run(register_demo(args.kafka_credentials))
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
        kafka = read_kafka_credentials(args.kafka_credentials) if args.kafka_credentials else {}
        demo_keys = json.loads(args.operator_keys.read_text()) if args.operator_keys else {}
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                demo(
                    args.url,
                    keys,
                    kafka,
                    args.subjects,
                    args.rate,
                    args.seed,
                    gateway=args.gateway,
                    operator_key=demo_keys.get("operator"),
                    release_every=args.release_every,
                    register_key=demo_keys.get(f"register_{DEMO_REGISTER}"),
                )
            )


if __name__ == "__main__":
    main()
