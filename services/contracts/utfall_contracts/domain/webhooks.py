"""Webhook deliveries' rules, pure: a message's id, when to try again, which secrets sign, what a delivery's
answer means.

An endpoint receives the ledger of its contract in determination order (the ledger's `seq`, which per
contract is commit order: every ledger write of a contract holds the contract's lock). It keeps one cursor,
the last `seq` it acknowledged; the message after it is retried until it is acknowledged, never skipped, so a
receiver sees each message in order, at least once, and deduplicates on `webhook-id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from utfall_events.payments import PaymentV1


def message_id(entry: PaymentV1) -> str:
    """The `webhook-id`: the payment and what happened to it, the same on every attempt, replay and
    re-decision (a ledger entry decided again after a database failover has the same payment id and kind)."""
    return f"{entry.payment_id}:{entry.kind}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first_delay: timedelta
    longest_delay: timedelta

    def delay(self, failed_attempts: int) -> timedelta:
        """How long to wait after the n-th failed attempt of a message: doubling from `first_delay`, never more
        than `longest_delay`. There is no last attempt: a message is retried until it is delivered, the endpoint
        is removed or its deliveries are replayed from elsewhere."""
        if failed_attempts < 1:
            return timedelta(0)
        exponent = min(failed_attempts - 1, 40)  # 2**40 first delays pass any longest delay anyone sets
        delay: timedelta = self.first_delay * (2**exponent)
        return min(delay, self.longest_delay)


@dataclass(frozen=True, slots=True)
class EndpointSecrets:
    secret: str
    previous_secret: str | None
    previous_valid_until: datetime | None

    def signing(self, now: datetime) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the one before it while the rotation's
        overlap lasts (Standard Webhooks sends every signature, space-separated; a receiver accepts any)."""
        secrets = [self.secret]
        if (
            self.previous_secret is not None
            and self.previous_valid_until is not None
            and now < self.previous_valid_until
        ):
            secrets.append(self.previous_secret)
        return secrets


def accepted(status_code: int) -> bool:
    """A delivery counts only on a 2xx: a redirect is not followed (it could point inside the network) and is a
    failure like any other answer."""
    return 200 <= status_code < 300
