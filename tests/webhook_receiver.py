"""A finance system's webhook receiver for the tests: https with a certificate from a throwaway CA (trustme),
verifying every request with the `standardwebhooks` library as a real receiver would, and told how to behave:
answer, fail with 500, hang past the sender's timeout, or be down altogether.

The CA is made once per test session and written where the services find it (`UTFALL_WEBHOOK_CA_FILE`).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import trustme
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Behaviour = Literal["ok", "error", "hang"]


@dataclass(frozen=True)
class ReceiverTls:
    ca_file: Path
    cert_file: Path
    key_file: Path


@cache
def receiver_tls() -> ReceiverTls:
    """The session's CA and a certificate for 127.0.0.1 and localhost signed by it."""
    base = Path(tempfile.mkdtemp(prefix="utfall-webhook-ca-"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    tls = ReceiverTls(base / "ca.pem", base / "cert.pem", base / "key.pem")
    ca.cert_pem.write_to_path(str(tls.ca_file))
    cert.private_key_pem.write_to_path(str(tls.key_file))
    cert.cert_chain_pems[0].write_to_path(str(tls.cert_file))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(tls.cert_file), append=True)
    return tls


def webhook_env() -> dict[str, str]:
    """What a contracts (or gateway) process needs to deliver to a receiver here: the CA, private addresses
    allowed, and a retry schedule short enough for a test (first retry 0.2 s, at most 2 s apart)."""
    return {
        "UTFALL_WEBHOOK_CA_FILE": str(receiver_tls().ca_file),
        "UTFALL_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "UTFALL_WEBHOOK_FIRST_RETRY_SECONDS": "0.2",
        "UTFALL_WEBHOOK_LONGEST_RETRY_SECONDS": "2",
        "UTFALL_WEBHOOK_TIMEOUT_SECONDS": "2",
        "UTFALL_WEBHOOK_POLL_SECONDS": "0.2",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Delivery:
    webhook_id: str
    body: bytes
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class WebhookReceiver:
    """Accepts a request only when one of `secrets` verifies it; counts every request by what happened."""

    secrets: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    behaviour: Behaviour = "ok"
    # decides per request, before `behaviour`: a test's script of failures (None: use `behaviour`)
    script: Callable[[int], Behaviour | None] | None = None
    accepted: list[Delivery] = field(default_factory=list)
    requests: int = 0
    refused_signatures: int = 0
    failed_on_purpose: int = 0
    # answered 503 before any secret was configured: the secret is only known from the registration's answer,
    # and the first delivery can arrive before it (a real receiver refuses then, and the sender retries)
    not_configured: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/utfall/payments"

    async def _receive(self, request: Request) -> Response:
        self.requests += 1
        behaviour = (self.script(self.requests) if self.script else None) or self.behaviour
        if behaviour == "error":
            self.failed_on_purpose += 1
            return Response("try later", status_code=500)
        if behaviour == "hang":
            self.failed_on_purpose += 1
            await asyncio.sleep(30)
            return Response(status_code=204)
        if not self.secrets:
            self.not_configured += 1
            return Response("no secret configured yet", status_code=503)
        body = await request.body()
        headers = dict(request.headers)
        for secret in self.secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            self.accepted.append(Delivery(headers["webhook-id"], body, headers, payload))
            return Response(status_code=204)
        self.refused_signatures += 1
        return Response("bad signature", status_code=401)

    async def start(self) -> None:
        tls = receiver_tls()
        app = Starlette(routes=[Route("/utfall/payments", self._receive, methods=["POST"])])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            ssl_certfile=str(tls.cert_file),
            ssl_keyfile=str(tls.key_file),
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.ensure_future(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Down: the port refuses connections until `start` again."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            await self._task
        self._server = self._task = None

    def unique(self) -> dict[str, Delivery]:
        """The deliveries after deduplication on `webhook-id`, in the order of their first arrival."""
        out: dict[str, Delivery] = {}
        for d in self.accepted:
            out.setdefault(d.webhook_id, d)
        return out

    @property
    def duplicates(self) -> int:
        return len(self.accepted) - len(self.unique())
