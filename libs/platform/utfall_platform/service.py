"""One service process: its connections, background tasks, and the HTTP endpoints every service has.

A service's `create_app()` builds a ServiceRuntime and a FastAPI app around it. Nothing connects until the
app's lifespan starts: the pool is created, migrations run, the outbox relay and consumers start; on
shutdown everything stops in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, Response
from fastapi_offline import FastAPIOffline
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import metrics
from .background import run_periodically
from .clock import Clock
from .consumer import DeadLetterPolicy, Handler, TransactionalBatchConsumer
from .db import create_pool, grant_readers, migrate
from .kafka import LagSampler, make_broker, require_topics, subscribe_transactional
from .kafka_acl import SERVICE_GRANTS
from .outbox import OutboxRelay, platform_ddl
from .problems import install_problem_handlers
from .settings import PlatformSettings

log = logging.getLogger(__name__)


class ServiceRuntime:
    def __init__(
        self,
        *,
        name: str,
        settings: PlatformSettings,
        clock: Clock,
        schema: str | None,
        migrations: Traversable | Path | None,
        relay: bool = True,
        database_url: str | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.schema = schema
        self.migrations = migrations
        self.with_relay = relay and schema is not None
        self.database_url = database_url or settings.database_url.get_secret_value()
        self.broker: KafkaBroker = make_broker(settings, name)
        self._pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.consumers: dict[str, TransactionalBatchConsumer] = {}
        self._consumer_topics: dict[str, str] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self.started = False
        self.readiness_checks: dict[str, Callable[[], bool]] = {}

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name}: the database pool is not started")
        return self._pool

    def consumer(
        self, name: str, topic: str, handler: Handler, dead_letter: DeadLetterPolicy
    ) -> Callable[[], TransactionalBatchConsumer]:
        """Declare a transactional consumer; returns a getter usable once the runtime has started."""
        self._consumer_topics[name] = topic

        def get() -> TransactionalBatchConsumer:
            existing = self.consumers.get(name)
            if existing is None:
                assert self.schema is not None
                existing = TransactionalBatchConsumer(
                    service=self.name,
                    name=name,
                    pool=self.pool,
                    schema=self.schema,
                    handler=handler,
                    dead_letter=dead_letter,
                    now=self.clock.now,
                )
                self.consumers[name] = existing
            return existing

        return get

    def subscribe(self, name: str, topic: str, handler: Handler, dead_letter: DeadLetterPolicy) -> None:
        """One transactional consumer of `topic`: its name keys its positions in Postgres, its metrics and,
        with the instance suffix, its Kafka consumer group."""
        subscribe_transactional(
            self.broker,
            topic,
            group_id=self.settings.group_id(name),
            consumer=self.consumer(name, topic, handler, dead_letter),
            settings=self.settings,
        )

    def on_start(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._on_start.append(fn)

    def on_stop(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._on_stop.append(fn)

    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self.name}:{name}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def every(self, seconds: float, step: Callable[[], Awaitable[object]], name: str) -> None:
        """Run `step` every `seconds` in the background, under the error policy of `background`."""
        self.spawn(run_periodically(step, every_seconds=seconds, service=self.name, task=name), name)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A background task must never die quietly: crash the process so its supervisor restarts it.
            log.critical("background task %s died: %r", task.get_name(), exc, exc_info=exc)
            import os
            import signal

            os.kill(os.getpid(), signal.SIGTERM)

    async def start(self) -> None:
        started = time.perf_counter()
        s = self.settings
        self._pool = await _retry(
            lambda: create_pool(self.database_url, min_size=s.db_pool_min, max_size=s.db_pool_max),
            f"{self.name}: postgres",
        )
        if self.schema is not None:
            assert self.migrations is not None
            schema = self.schema

            async def platform_tables(conn: asyncpg.Connection) -> None:
                await conn.execute(platform_ddl(schema))
                await grant_readers(conn, schema)

            await migrate(self.pool, schema, self.migrations, after=platform_tables)
        needed = SERVICE_GRANTS[self.name].topics
        await _retry(lambda: require_topics(s.kafka, needed), f"{self.name}: kafka topics")
        if self.with_relay:
            assert self.schema is not None
            self.relay = OutboxRelay(
                pool=self.pool,
                dsn=self.database_url,
                schema=self.schema,
                kafka=s.kafka,
                batch_size=s.outbox_batch_size,
                instance=s.instance,
            )
            self.spawn(self.relay.run(), "outbox-relay")
        for fn in self._on_start:
            await fn()
        await _retry(self.broker.start, f"{self.name}: kafka broker")
        if self._consumer_topics and self.schema is not None:
            sampler = LagSampler(
                service=self.name,
                kafka=s.kafka,
                pool=self.pool,
                schema=self.schema,
                consumers=self._consumer_topics,
                interval=s.lag_sample_seconds,
            )
            self.spawn(sampler.run(), "lag-sampler")
            self.every(s.position_check_seconds, self._check_positions, "position-check")
        # What start built (modules, models, routes, the app) lives as long as the process: frozen out of the
        # collector's sight, a full collection walks only what requests and batches allocated since, not a
        # few hundred thousand long-lived objects (tens of ms with the event loop stopped).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*s.gc_thresholds)
        metrics.observe_gc_pauses()
        self.started = True
        log.info("%s started in %.2fs", self.name, time.perf_counter() - started)

    async def _check_positions(self) -> None:
        for consumer in list(self.consumers.values()):
            await consumer.check_positions()

    async def stop(self) -> None:
        self.started = False
        with contextlib.suppress(Exception):
            await self.broker.stop()
        if self.relay is not None:
            await self.relay.stop()
        for fn in reversed(self._on_stop):
            with contextlib.suppress(Exception):
                await fn()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        if self._pool is not None:
            await self._pool.close()

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            async with asyncio.timeout(2):
                checks["postgres"] = (await self.pool.fetchval("SELECT 1")) == 1
        except Exception:
            checks["postgres"] = False
        try:
            checks["kafka"] = bool(await self.broker.ping(timeout=2.0))
        except Exception:
            checks["kafka"] = False
        if self.relay is not None:
            checks["outbox_relay"] = self.relay.is_leader or "standby"
        for name, check in self.readiness_checks.items():
            checks[name] = bool(check())
        return checks


async def _retry(make: Callable[[], Awaitable[Any]], what: str, attempts: int = 60) -> Any:
    delay = 0.2
    for attempt in range(attempts):
        try:
            return await make()
        except Exception as exc:  # start-up: wait for Kafka/Postgres to come up
            if attempt == attempts - 1:
                raise
            log.warning("%s not ready (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)
    raise AssertionError("unreachable")


def create_service_app(
    runtime: ServiceRuntime, *, title: str, version: str = "1", **fastapi_kwargs: Any
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    # Swagger UI's assets come from a package, not a CDN: /docs works on a locked-down municipal network.
    fastapi_kwargs.setdefault("redoc_url", None)
    app = FastAPIOffline(title=title, version=version, lifespan=lifespan, **fastapi_kwargs)
    app.state.runtime = runtime
    install_problem_handlers(app)
    install_http_metrics(app, runtime.name)
    app.include_router(ops_router(runtime))
    return app


def install_http_metrics(app: FastAPI, service: str) -> None:
    app.add_middleware(HttpMetrics, service=service)


class HttpMetrics:
    """Each answer's time by route template, method and status. Plain ASGI: Starlette's `BaseHTTPMiddleware`
    runs every request through a task group and memory streams, a large share of a small answer's CPU."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            metrics.HTTP_REQUESTS.labels(self.service, path, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )


def ops_router(runtime: ServiceRuntime) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health", summary="Liveness: the process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @router.get("/ready", summary="Readiness: Postgres and Kafka answer", response_model=None)
    async def ready() -> Response:
        checks = await runtime.readiness() if runtime.started else {"started": False}
        ok = runtime.started and all(v is not False for v in checks.values())
        import orjson

        return Response(
            orjson.dumps(
                {"status": "ready" if ok else "unavailable", "service": runtime.name, "checks": checks}
            ),
            status_code=200 if ok else 503,
            media_type="application/json",
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def serve(app: FastAPI, host: str, port: int) -> None:
    import uvicorn

    from .profiling import install_from_environment

    install_from_environment(app.state.runtime.name)

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        timeout_graceful_shutdown=10,
    )
