"""A reference finance consumer: subscribes to `payments.v1`, deduplicates on (payment id, kind) and prints
a running balance per contract. Documentation for finance systems, and a test client.

    UTFALL_KAFKA_USERNAME=finance UTFALL_KAFKA_PASSWORD=... \
    utfall-finance-example --bootstrap 127.0.0.1:9092 [--group finance-my-system] [--contract ID]

The `finance` principal may read payments.v1 only, under consumer groups that start with `finance-`.

Delivery is at-least-once from Kafka's side (a consumer restart may see a message again); the payment id
makes it exactly-once for the books: a payment id is triggered at most once and reversed at most once.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer

from utfall_events.payments import PaymentV1
from utfall_events.topics import PAYMENTS
from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.settings import PlatformSettings


@dataclass
class Books:
    seen: set[tuple[str, str]] = field(default_factory=set)
    balance_ore: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    on_hold: set[str] = field(default_factory=set)  # disputed payments not resolved yet: do not pay them out

    def apply(self, payment: PaymentV1) -> bool:
        """Returns False for a message already booked."""
        key = (payment.payment_id, payment.kind)
        if key in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(key)
        self.balance_ore[payment.contract_id] = (
            self.balance_ore.get(payment.contract_id, 0) + payment.signed_amount_ore
        )
        if payment.kind == "payment.disputed":
            self.on_hold.add(payment.payment_id)
        elif payment.kind == "payment.dispute_resolved":
            self.on_hold.discard(payment.payment_id)
        return True


def kronor(ore: int) -> str:
    return f"{ore / 100:,.2f} kr".replace(",", " ")


async def follow(
    kafka: KafkaAccess,
    group: str | None,
    contract: str | None,
    books: Books,
    *,
    stop_after: float | None = None,
    quiet: bool = False,
) -> Books:
    consumer = AIOKafkaConsumer(
        PAYMENTS,
        **kafka.client_options(),
        group_id=group,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=group is not None,
    )
    await consumer.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + stop_after if stop_after else None
    try:
        while deadline is None or loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    payment = PaymentV1.model_validate(orjson.loads(record.value))
                    if contract and payment.contract_id != contract:
                        continue
                    if books.apply(payment) and not quiet:
                        sign = {"payment.triggered": "+", "payment.reversed": "-"}.get(payment.kind, "hold ")
                        if payment.kind == "payment.dispute_resolved":
                            sign = (
                                "release "
                                if payment.dispute and payment.dispute.resolution == "dismissed"
                                else ""
                            )
                        print(
                            f"{payment.contract_id:<28} {sign}{kronor(payment.amount_ore):>14}  "
                            f"{payment.milestone_id:<24} balance {kronor(books.balance_ore[payment.contract_id])}"
                            f"  [{payment.payment_id}]",
                            flush=True,
                        )
    finally:
        await consumer.stop()
    return books


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="utfall-finance-example",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bootstrap", default=None, help="default UTFALL_KAFKA_BOOTSTRAP")
    parser.add_argument(
        "--group", default=None, help="consumer group (commits offsets); none reads from the start"
    )
    parser.add_argument("--contract", default=None)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)
    access = PlatformSettings().kafka
    if args.bootstrap:
        access = dataclasses.replace(access, bootstrap=args.bootstrap)
    books = asyncio.run(follow(access, args.group, args.contract, Books(), stop_after=args.seconds))
    for contract_id, balance in sorted(books.balance_ore.items()):
        print(f"{contract_id}: {kronor(balance)} ({books.duplicates} duplicate deliveries ignored)")


if __name__ == "__main__":
    main()
