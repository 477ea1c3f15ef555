"""Contracts' webhook deliverer: every `payments.v1` message of a contract, as a Standard Webhooks request to
each endpoint registered for it, in determination order, at least once.

Each round finds the endpoints with a due message; one deliverer per endpoint holds its session lock (two
replicas never deliver to one endpoint at once), sends the messages after the cursor one by one and moves the
cursor past those the receiver acknowledged with a 2xx, in the transaction that logs the attempts (at least every
`webhook_commit_seconds`). A failed attempt stops the endpoint's round and sets its next attempt by the retry
policy. A process killed before that commit has not moved the cursor: those messages go again, with the same
`webhook-id`, which a receiver deduplicates on.

The body is the message exactly as `payments.v1` carries it; `webhook-timestamp` is the wall clock's (a
receiver refuses a timestamp far from its own time), while the domain's clock decides retries and a rotated
secret's overlap.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from standardwebhooks import Webhook

from utfall_platform.clock import Clock
from utfall_platform.destinations import destination_refusal

from . import metrics as contract_metrics
from .domain.webhooks import RetryPolicy, accepted, message_id
from .messages import payment_message
from .settings import ContractsSettings
from .webhook_store import Attempt, Endpoint, PendingMessage, WebhookStore

log = logging.getLogger(__name__)
USER_AGENT = "Utfall-Webhooks/1 (+https://www.standardwebhooks.com)"


def http_client(settings: ContractsSettings) -> httpx.AsyncClient:
    """Never follows a redirect (it could lead inside the network); trusts the system's CAs and the one set."""
    verify: ssl.SSLContext | bool = True
    if settings.webhook_ca_file is not None:
        verify = ssl.create_default_context()
        verify.load_verify_locations(cafile=str(settings.webhook_ca_file))
    return httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        verify=verify,
        headers={"user-agent": USER_AGENT},
        limits=httpx.Limits(max_connections=2 * settings.webhook_concurrency),
    )


def signed_request(
    message: PendingMessage, secrets: list[str], sent_at: datetime
) -> tuple[bytes, dict[str, str]]:
    """The body and the Standard Webhooks headers of one message: a signature per secret, space-separated."""
    body = payment_message(message.entry).value
    webhook_id = message_id(message.entry)
    return body, {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": " ".join(Webhook(s).sign(webhook_id, sent_at, body) for s in secrets),
    }


class WebhookDeliverer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        settings: ContractsSettings,
        client: httpx.AsyncClient,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.settings = settings
        self.client = client
        self.wall_clock = wall_clock
        self.retry = RetryPolicy(
            timedelta(seconds=settings.webhook_first_retry_seconds),
            timedelta(seconds=settings.webhook_longest_retry_seconds),
        )

    async def step(self) -> int:
        """One round: every due endpoint served (a few at a time); returns the messages delivered."""
        async with self.pool.acquire() as conn:
            due = await WebhookStore(conn).due_endpoints(self.clock.now(), limit=1000)
        delivered = 0
        for start in range(0, len(due), self.settings.webhook_concurrency):
            chunk = due[start : start + self.settings.webhook_concurrency]
            delivered += sum(await asyncio.gather(*(self.serve(endpoint_id) for endpoint_id in chunk)))
        return delivered

    async def serve(self, endpoint_id: str) -> int:
        async with self.pool.acquire() as conn:
            store = WebhookStore(conn)
            if not await store.try_lock(endpoint_id):
                return 0  # another replica is on it
            try:
                delivered = 0
                while True:  # a backlog goes on in full batches, without waiting for the next round
                    done = await self._deliver(store, endpoint_id)
                    delivered += done
                    if done < self.settings.webhook_batch:
                        return delivered
            finally:
                await store.unlock(endpoint_id)

    async def _deliver(self, store: WebhookStore, endpoint_id: str) -> int:
        endpoint = await store.endpoint(endpoint_id)
        now = self.clock.now()
        if endpoint is None or (endpoint.next_attempt_at is not None and endpoint.next_attempt_at > now):
            return 0  # removed, or another replica failed it since this round began
        pending = await store.pending(endpoint, self.settings.webhook_batch)
        if not pending:
            return 0
        # Where the URL points now (a name may resolve elsewhere than at registration); once per round.
        refusal = await destination_refusal(
            endpoint.url, allow_private=self.settings.webhook_allow_private_addresses
        )
        acknowledged: list[Attempt] = []
        committed_at = time.monotonic()
        attempt_number = endpoint.failed_attempts + 1
        for index, message in enumerate(pending):
            attempt = await self._send(endpoint, message, attempt_number, refusal)
            if attempt.delivered:
                acknowledged.append(attempt)
                attempt_number = 1
                # The cursor moves in batches: a receiver's acknowledgements are committed at least every
                # `webhook_commit_seconds`; a deliverer that dies before sends them again, with their ids.
                if time.monotonic() - committed_at >= self.settings.webhook_commit_seconds:
                    await self._acknowledge(store, endpoint_id, acknowledged)
                    acknowledged, committed_at = [], time.monotonic()
                continue
            await self._acknowledge(store, endpoint_id, acknowledged)
            contract_metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
            await store.failed(
                endpoint_id,
                attempt,
                next_attempt_at=attempt.attempted_at + self.retry.delay(attempt.attempt),
                # failing since this attempt, unless it is the next of a run of failures
                failing_since=(endpoint.failing_since or attempt.attempted_at)
                if index == 0
                else attempt.attempted_at,
            )
            return index  # the messages before it were delivered
        await self._acknowledge(store, endpoint_id, acknowledged)
        return len(pending)

    @staticmethod
    async def _acknowledge(store: WebhookStore, endpoint_id: str, attempts: list[Attempt]) -> None:
        if attempts:
            await store.delivered(endpoint_id, attempts)
            contract_metrics.WEBHOOK_DELIVERIES.labels("delivered").inc(len(attempts))

    async def _send(
        self, endpoint: Endpoint, message: PendingMessage, attempt_number: int, refusal: str | None
    ) -> Attempt:
        now = self.clock.now()
        body, headers = signed_request(
            message, endpoint.secrets.signing(now), datetime.fromtimestamp(self.wall_clock(), UTC)
        )
        started = time.monotonic()
        status: int | None = None
        error = refusal
        if error is None:
            try:
                response = await self.client.post(endpoint.url, content=body, headers=headers)
                status = response.status_code
                if not accepted(status):
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500] if str(exc) else type(exc).__name__
        return Attempt(
            message_id=headers["webhook-id"],
            seq=message.seq,
            attempt=attempt_number,
            attempted_at=now,
            status_code=status,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
            delivered=error is None,
        )

    async def prune_log(self) -> int:
        async with self.pool.acquire() as conn:
            return await WebhookStore(conn).prune_log(
                self.clock.now() - timedelta(days=self.settings.webhook_log_days)
            )

    async def sample_gauges(self) -> None:
        async with self.pool.acquire() as conn:
            health = await WebhookStore(conn).health()
        now = self.clock.now()
        contract_metrics.WEBHOOK_PENDING.clear()
        contract_metrics.WEBHOOK_FAILING.clear()
        for endpoint in health:
            labels = (endpoint.endpoint_id, endpoint.contract_id)
            contract_metrics.WEBHOOK_PENDING.labels(*labels).set(endpoint.pending_messages)
            failing = (now - endpoint.failing_since).total_seconds() if endpoint.failing_since else 0.0
            contract_metrics.WEBHOOK_FAILING.labels(*labels).set(max(0.0, failing))
