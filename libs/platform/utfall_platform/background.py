"""Background loops (samplers, the tick, expiry) with one error policy.

Transient faults (the broker or the database away, a connection dropped mid-query) are logged and the loop
goes on at its next round. Anything else is a bug: it is logged with its traceback and counted in
`utfall_background_errors_total` (an alert watches it), and the loop still goes on. A gauge sampler that
trips over an unexpected error must not take the consumers and the relay of its process down with it;
before this policy, each loop listed the exceptions it survived, and one it had not listed (a connection
dying mid-protocol during a database restart) ended the whole service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError

from . import metrics
from .db import TRANSIENT_PG_ERRORS

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (KafkaError, *TRANSIENT_PG_ERRORS)


def record_failure(service: str, task: str, exc: BaseException) -> None:
    """Log and count a failed round of a background loop, by whether the fault was transient."""
    if isinstance(exc, TRANSIENT_ERRORS):
        metrics.BACKGROUND_ERRORS.labels(service, task, "transient").inc()
        log.warning("%s: %s failed on a transient fault: %r", service, task, exc)
    else:
        metrics.BACKGROUND_ERRORS.labels(service, task, "error").inc()
        log.error("%s: %s failed: %r", service, task, exc, exc_info=exc)


async def run_periodically(
    step: Callable[[], Awaitable[object]],
    *,
    every_seconds: float,
    service: str,
    task: str,
    after_failure: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run `step` every `every_seconds` until cancelled; `after_failure` resets what a failed round left
    behind (a client to reconnect)."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            record_failure(service, task, exc)
            if after_failure is not None:
                try:
                    await after_failure()
                except Exception as cleanup_exc:  # the next round starts from scratch anyway
                    log.debug("%s: %s clean-up failed: %r", service, task, cleanup_exc)
        await asyncio.sleep(every_seconds)
