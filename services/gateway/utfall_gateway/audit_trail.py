"""The audit trail's writer and the middleware that holds every audited answer until its entry is durable.

Writes are group commits: a request hands its entry over and waits; one writer task takes every entry waiting,
chains them (`domain/audit.py`), inserts them in one transaction and wakes their requests once it commits. Under
load a commit carries many entries, so the trail costs about one commit's time per answer, not one commit each.
If the write fails the answers wait for are not sent: they become 503 problem details (no exact data leaves
without its entry).

What is audited: every answer to someone who presented credentials (a key, a token, a session), refused or not,
and every request that may change state. Anonymous reads are not: they get released, disclosure-controlled
figures only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge, Histogram

from utfall_platform.db import TRANSIENT_PG_ERRORS, connect
from utfall_platform.problems import PROBLEM_JSON, problem_document

from .domain.audit import COLUMNS, AuditEntry, AuditFacts, ChainHead, append
from .domain.policy import Principal

log = logging.getLogger(__name__)

AUDIT_ENTRIES = Counter("utfall_audit_entries_total", "Entries written to the audit trail", ["outcome"])
HELD_BUCKETS = (0.0002, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
AUDIT_WRITE_SECONDS = Histogram(
    "utfall_audit_write_seconds",
    "Time an audited answer waited for its entry to be durable",
    buckets=HELD_BUCKETS,
)
AUDIT_COMMIT_SECONDS = Histogram(
    "utfall_audit_commit_seconds",
    "One batch's write and commit (the rest of an answer's wait is the batch before it and the event loop)",
    buckets=HELD_BUCKETS,
)
AUDIT_BATCH_ENTRIES = Histogram(
    "utfall_audit_batch_entries", "Entries per group commit", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
AUDIT_FAILURES = Counter(
    "utfall_audit_write_failures_total", "Audit trail writes that failed (answers refused)"
)
AUDIT_UNUSUAL_READERS = Gauge(
    "utfall_audit_unusual_readers",
    "People or keys whose rows read in the last window are far above their usual (see docs: Audit trail)",
)
AUDIT_TOP_READER_RATIO = Gauge(
    "utfall_audit_top_reader_ratio", "The highest ratio of a reader's rows in the last window to its usual"
)

INSERT = (
    f"INSERT INTO gateway.audit_entries ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))})"
)


class AuditWriteFailed(Exception):
    pass


class AuditTrail:
    """One chain (this gateway process's), written by one task over its own connection: never waiting for the
    request handlers' pool, and one round trip per batch (an atomic `executemany`, the session read-write)."""

    def __init__(self, dsn: str, chain: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self.chain = chain
        self._head: ChainHead | None = None
        self._waiting: list[tuple[AuditFacts, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self.readers = ReaderWatch()

    async def record(self, facts: AuditFacts) -> None:
        """Returns once the entry is committed; raises `AuditWriteFailed` if it could not be."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((facts, future))
        self._wake.set()
        await future

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._waiting = self._waiting, []
            if not batch:
                continue
            try:
                AUDIT_BATCH_ENTRIES.observe(len(batch))
                with AUDIT_COMMIT_SECONDS.time():
                    await self._write([facts for facts, _ in batch])
            except TRANSIENT_PG_ERRORS as exc:
                self._head = None  # the commit's outcome is unknown: read the chain's head again
                await self._drop_connection()
                AUDIT_FAILURES.inc(len(batch))
                log.warning(
                    "audit trail write failed (%s): %d answers refused", type(exc).__name__, len(batch)
                )
                for _, future in batch:
                    if not future.done():
                        future.set_exception(AuditWriteFailed(type(exc).__name__))
                continue
            for facts, future in batch:
                AUDIT_ENTRIES.labels("refused" if facts.outcome in (401, 403) else "answered").inc()
                self.readers.saw(facts)
                if not future.done():
                    future.set_result(None)
            self.readers.publish()

    async def _write(self, batch: list[AuditFacts]) -> None:
        conn = await self._connection()
        head = self._head or await _read_head(conn, self.chain)
        entries, new_head = append(head, self.chain, batch)
        await conn.executemany(INSERT, [e.row() for e in entries])  # atomic: all of the batch or none
        self._head = new_head

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            conn = await connect(self._dsn, command_timeout=10)
            # the gateway's role is read-only by default; this session writes the trail (its grants allow
            # INSERT there and nothing else)
            await conn.execute("SET default_transaction_read_only = off")
            self._conn = conn
        return self._conn

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.terminate()
        self._conn = None

    async def close(self) -> None:
        await self._drop_connection()


async def _read_head(conn: asyncpg.Connection, chain: str) -> ChainHead:
    row = await conn.fetchrow(
        "SELECT seq, hash FROM gateway.audit_entries WHERE chain = $1 ORDER BY seq DESC LIMIT 1", chain
    )
    if row is None:
        row = await conn.fetchrow(
            "SELECT through_seq AS seq, through_hash AS hash FROM gateway.audit_anchors WHERE chain = $1",
            chain,
        )
    return ChainHead(row["seq"], bytes(row["hash"])) if row else ChainHead(0, bytes(32))


class ReaderWatch:
    """Rows read per reader in 10-minute windows against the reader's own usual (a moving average of its
    earlier windows): a reader reading ten times its usual and at least 500 rows is unusual."""

    WINDOW_SECONDS = 600.0
    RATIO = 10.0
    FLOOR = 500

    def __init__(self) -> None:
        self._window_start: float | None = None
        self._current: dict[str, int] = defaultdict(int)
        self._usual: dict[str, float] = {}
        self._history: deque[dict[str, int]] = deque(maxlen=36)

    def saw(self, facts: AuditFacts) -> None:
        now = facts.at.timestamp()
        if self._window_start is None:
            self._window_start = now
        if now - self._window_start >= self.WINDOW_SECONDS:
            self._close_window()
            self._window_start = now
        if facts.rows:
            self._current[facts.actor] += facts.rows

    def _close_window(self) -> None:
        for actor, rows in self._current.items():
            before = self._usual.get(actor)
            self._usual[actor] = rows if before is None else 0.8 * before + 0.2 * rows
        for actor in set(self._usual) - set(self._current):
            self._usual[actor] *= 0.8
        self._current = defaultdict(int)

    def unusual(self) -> dict[str, float]:
        found = {}
        for actor, rows in self._current.items():
            usual = max(self._usual.get(actor, 0.0), 1.0)
            if rows >= self.FLOOR and rows / usual >= self.RATIO:
                found[actor] = rows / usual
        return found

    def publish(self) -> None:
        """Set the gauges: once per written batch (it looks at every reader of the window)."""
        found = self.unusual()
        AUDIT_UNUSUAL_READERS.set(len(found))
        ratios = [rows / max(self._usual.get(a, 0.0), 1.0) for a, rows in self._current.items()]
        AUDIT_TOP_READER_RATIO.set(max(ratios, default=0.0))


ROWS_HEADER = b"x-utfall-audit-rows"  # from the JSON response to the middleware; never sent
MAX_PARSED_BODY = 64 * 1024


def rows_in(value: Any) -> int | None:
    """How many rows an answer holds: a JSON list's items, or the items of a JSON object's top-level lists."""
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        return sum(len(v) for v in lists) if lists else 1
    return None


class CountedJSONResponse(JSONResponse):
    """The gateway's JSON answers: they count their rows while the content is still objects (no second parse)."""

    def render(self, content: Any) -> bytes:
        self._rows = rows_in(content)
        # orjson: the same compact UTF-8 JSON as the standard library's, in a tenth of the time (an operator's
        # result tables are the gateway's largest answers and its most frequent exact reads)
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        super().init_headers(headers)
        rows = getattr(self, "_rows", None)
        if rows is not None:
            self.raw_headers.append((ROWS_HEADER, str(rows).encode()))


def count_rows(content_type: str, body: bytes) -> int | None:
    """Rows of an answer that did not count its own: a small JSON answer's (parsed), a CSV's lines after its
    header. None for what has no rows (a page, an XML document) or a large JSON answer of another kind."""
    if not body:
        return None
    if "json" in content_type:
        if len(body) > MAX_PARSED_BODY:
            return None
        try:
            return rows_in(orjson.loads(body))
        except orjson.JSONDecodeError:
            return None
    if "csv" in content_type:
        return max(body.count(b"\n") - 1, 0)
    return None


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class AuditMiddleware:
    """Holds an audited answer (its start and body) until `trail.record` returns; then sends it."""

    def __init__(self, app: Any, trail: Callable[[], AuditTrail | None], now: Callable[[], datetime]) -> None:
        self.app = app
        self.trail = trail
        self.now = now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        trail = self.trail()
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if trail is None:

            async def unmarked(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [(k, v) for k, v in message.get("headers", []) if k != ROWS_HEADER]
                await send(message)

            await self.app(scope, receive, unmarked)
            return
        held: list[Message] = []
        start: Message | None = None

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            held.append(message)
            if message.get("more_body", False):
                return
            facts = _facts(scope, start, b"".join(m.get("body", b"") for m in held), self.now())
            if facts is not None:
                try:
                    with AUDIT_WRITE_SECONDS.time():
                        await trail.record(facts)
                except AuditWriteFailed:
                    body = orjson.dumps(
                        problem_document(
                            503,
                            "audit-unavailable",
                            "The answer is withheld: the audit trail could not record it.",
                        )
                    )
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 503,
                            "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"retry-after", b"1")],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
            start["headers"] = [(k, v) for k, v in start.get("headers", []) if k != ROWS_HEADER]
            await send(start)
            for message in held:
                await send(message)

        await self.app(scope, receive, hold)


def _presented_credentials(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name in (b"authorization", b"x-api-key"):
            return True
        if name == b"cookie" and (b"utfall_session=" in value or b"utfall_provider=" in value):
            return True
    return False


def _facts(scope: Scope, start: Message, body: bytes, now: datetime) -> AuditFacts | None:
    state = scope.get("state") or {}
    who: Principal | None = state.get("principal")
    method = scope["method"]
    audited = (
        (who is not None and not who.is_public) or method not in SAFE_METHODS or _presented_credentials(scope)
    )
    if not audited or (method in SAFE_METHODS and scope.get("path", "").startswith("/static/")):
        return None  # a stylesheet holds no data, whoever's cookies came with it
    route = scope.get("route")
    template = getattr(route, "path", None) or ("(no route)" if scope.get("path") else "")
    params = scope.get("path_params") or {}
    query = dict(_query(scope))
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])}
    counted = headers.get(ROWS_HEADER.decode())
    client = scope.get("client")
    path = scope.get("path", "") + (
        ("?" + scope["query_string"].decode("latin-1")) if scope.get("query_string") else ""
    )
    return AuditFacts(
        at=now,
        actor=storable(who.actor if who is not None else "unauthenticated", 300) or "",
        actor_name=storable(who.person_name if who is not None else None),
        role=who.role if who is not None else "none",
        scope={k: _storable_value(v) for k, v in (who.scope() if who is not None else {}).items()},
        method=storable(method, 16) or "",
        route=storable(template, 300) or "",
        path=storable(path, 2000) or "",
        contract_id=storable(params.get("contract_id") or query.get("contract_id")),
        provider_id=storable(params.get("provider_id") or query.get("provider_id")),
        period=storable(params.get("period") or query.get("period") or query.get("year")),
        rows=(int(counted) if counted else count_rows(headers.get("content-type", ""), body))
        if start["status"] < 300
        else None,
        client=client[0] if client else None,
        outcome=int(start["status"]),
    )


def storable(value: str | None, limit: int = 200) -> str | None:
    """What a caller sent, as PostgreSQL text can hold it: NUL and lone surrogates escaped, cut to `limit`. An
    entry must never fail to be written because of what it records."""
    if value is None:
        return None
    text = value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit]


def _storable_value(value: Any) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, list):
        return [_storable_value(v) for v in value]
    return value


def _query(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(scope.get("query_string", b"").decode("latin-1"))


def entry_out(entry: AuditEntry) -> dict[str, Any]:
    """An entry as the API and the export give it."""
    f = entry.facts
    return {
        "chain": entry.chain,
        "seq": entry.seq,
        "at": f.at,
        "actor": f.actor,
        "actor_name": f.actor_name,
        "role": f.role,
        "scope": dict(f.scope),
        "method": f.method,
        "route": f.route,
        "path": f.path,
        "contract_id": f.contract_id,
        "provider_id": f.provider_id,
        "period": f.period,
        "rows": f.rows,
        "client": f.client,
        "outcome": f.outcome,
        "hash": entry.hash.hex(),
    }
