"""Webhook deliveries on real Kafka and Postgres, with the contracts service as a real process delivering to an
https receiver that verifies every request with the `standardwebhooks` library: a receiver that is down, answers
500s and hangs past the timeout, then recovers, while the deliverer is SIGKILLed twice, ends with every payment
message of the contract exactly once after deduplication, in ledger order, equal to the ledger; a rotated secret
signs beside the old one for the overlap only; a replay delivers again from a point in time with the same ids;
a removed endpoint gets nothing more."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from utfall_events.topics import CONTRACT_COMMANDS, OUTCOMES
from utfall_events.webhooks import (
    RegisterWebhookV1,
    RemoveWebhookV1,
    ReplayWebhookV1,
    RotateWebhookSecretV1,
    WebhookCommandV1,
)
from utfall_gateway.routes.webhooks import new_secret

from ..helpers import produce, wait_until
from ..webhook_receiver import Behaviour, WebhookReceiver
from .test_contracts import Scenario, contracts_process, settled
from .test_disputes import paid_for, rows

__all__ = ["contracts_process"]  # the fixture, shared with test_contracts
pytestmark = pytest.mark.asyncio(loop_scope="session")


def envelope(contract_id: str) -> dict[str, Any]:
    return {
        "command_id": str(uuid.uuid4()),
        "contract_id": contract_id,
        "key_id": "commissioner-key",
        "requested_at": datetime.now(UTC),
    }


async def send(world: Any, command: Any) -> str:
    """Sends a webhook command and waits for its recorded outcome; returns the outcome's detail."""
    await produce(
        world.kafka,
        CONTRACT_COMMANDS,
        [(command.contract_id.encode(), WebhookCommandV1(command).model_dump_json().encode(), [])],
    )

    async def decided() -> Any:
        found = await rows(
            world,
            "SELECT outcome, detail FROM contracts.command_results WHERE command_id = $1",
            command.command_id,
        )
        return found[0] if found else None

    outcome = await wait_until(decided, timeout=120, interval=0.1, what=f"{command.command} decided")
    assert outcome["outcome"] == "applied", outcome["detail"]
    return str(outcome["detail"])


async def ledger_in_order(world: Any, contract_id: str) -> list[tuple[str, str, int, datetime]]:
    """(webhook-id, kind, amount, determined_at) of every entry in determination order."""
    entries = await rows(
        world,
        "SELECT payment_id, kind, amount_ore, determined_at FROM contracts.ledger WHERE contract_id = $1 ORDER BY seq",
        contract_id,
    )
    return [
        (f"{r['payment_id']}:{r['kind']}", r["kind"], r["amount_ore"], r["determined_at"]) for r in entries
    ]


async def until(predicate: Callable[[], bool], what: str, timeout: float = 300) -> None:
    async def check() -> bool:
        return predicate()

    await wait_until(check, timeout=timeout, interval=0.02, what=what)


async def received_all(receiver: WebhookReceiver, world: Any, contract_id: str, timeout: float = 300) -> None:
    async def done() -> bool:
        return len(receiver.unique()) >= len(await ledger_in_order(world, contract_id))

    await wait_until(done, timeout=timeout, interval=0.2, what="every payment message delivered")


@pytest.mark.timeout(900)
async def test_a_receiver_down_failing_and_hanging_gets_every_payment_once_in_order_through_kills(
    world, contracts_process, record_property
) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario(300)
    contract = scenario.contract_id
    await paid_for(world, scenario)
    secret = new_secret()
    receiver = WebhookReceiver(secrets=[secret])
    # Registered while the receiver is down: connections refused, retried with backoff.
    await send(
        world,
        RegisterWebhookV1(
            **envelope(contract), endpoint_id=str(uuid.uuid4()), url=receiver.url, secret=secret
        ),
    )
    await asyncio.sleep(2.0)
    # Up, but the first 20 requests answer 500 and the next 3 hang past the deliverer's timeout; after that one
    # request in 50 fails at random.
    rng = random.Random(11)

    def script(n: int) -> Behaviour | None:
        if n <= 20:
            return "error"
        if n <= 23:
            return "hang"
        return "error" if rng.random() < 1 / 50 else "ok"

    receiver.script = script
    await receiver.start()
    loop = asyncio.get_running_loop()
    kills = 0
    try:
        for at_least in (100, 300):
            await until(
                lambda at_least=at_least: len(receiver.accepted) >= at_least,  # type: ignore[misc]
                f"{at_least} deliveries before the kill",
            )
            contracts_process.kill("contracts")
            kills += 1
            if at_least == 100:
                # more payments while the deliverer is dead: a tenth of the achieved outcomes reversed
                await produce(world.kafka, OUTCOMES, scenario.facts(2))
            contracts_process.start_service("contracts")
            await loop.run_in_executor(None, contracts_process.wait_ready, ("contracts",))
        expected = scenario.expected_ledger(2)
        assert await settled(world, contract, expected) == expected
        await received_all(receiver, world, contract)
        await asyncio.sleep(1.0)  # anything more would arrive now
    finally:
        await receiver.stop()

    ledger = await ledger_in_order(world, contract)
    unique = receiver.unique()
    assert list(unique) == [message_id for message_id, *_ in ledger]  # each once, in determination order
    for (message_id, kind, amount, _), delivery in zip(ledger, unique.values(), strict=True):
        assert (delivery.payload["kind"], delivery.payload["amount_ore"]) == (kind, amount), message_id
        assert delivery.payload["contract_id"] == contract
    assert receiver.refused_signatures == 0
    assert receiver.failed_on_purpose >= 23
    tampered = next(iter(unique.values()))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered.body.replace(b'"amount_ore":', b'"amount_ore":9'), tampered.headers)
    log = await rows(
        world,
        "SELECT count(*) FILTER (WHERE delivered) AS delivered, count(*) FILTER (WHERE NOT delivered) AS failed "
        "FROM contracts_read.webhook_attempts a JOIN contracts_read.webhook_endpoints e USING (endpoint_id) "
        "WHERE e.contract_id = $1",
        contract,
    )
    # the 23 scripted failures came before the first kill, so each is in the delivery log (a random failure
    # later may fall just before a kill, when the killed deliverer could not log it)
    assert log[0]["failed"] >= 23
    assert log[0]["delivered"] >= len(ledger)
    for name, value in (
        ("webhook_messages", len(ledger)),
        ("webhook_requests_accepted", len(receiver.accepted)),
        ("webhook_duplicates", receiver.duplicates),
        ("webhook_failed_attempts", log[0]["failed"]),
        ("webhook_kills", kills),
    ):
        record_property(name, value)


@pytest.mark.timeout(600)
async def test_rotation_signs_with_both_secrets_for_the_overlap_replay_repeats_ids_and_removal_stops(
    world, contracts_process
) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario(40)
    contract = scenario.contract_id
    await paid_for(world, scenario)
    first, second, third = new_secret(), new_secret(), new_secret()
    receiver = WebhookReceiver(secrets=[first, second, third])
    await receiver.start()
    endpoint_id = str(uuid.uuid4())
    try:
        await send(
            world,
            RegisterWebhookV1(**envelope(contract), endpoint_id=endpoint_id, url=receiver.url, secret=first),
        )
        await received_all(receiver, world, contract)
        ledger = await ledger_in_order(world, contract)
        assert list(receiver.unique()) == [m for m, *_ in ledger]

        def verifies(delivery: Any, secret: str) -> bool:
            try:
                Webhook(secret).verify(delivery.body, delivery.headers)
            except WebhookVerificationError:
                return False
            return True

        # Rotate with an hour's overlap, then replay from the 11th entry: every delivery verifies with either.
        await send(
            world,
            RotateWebhookSecretV1(
                **envelope(contract),
                endpoint_id=endpoint_id,
                secret=second,
                previous_valid_until=datetime.now(UTC) + timedelta(hours=1),
            ),
        )
        since = ledger[10][3]
        again = [m for m, *_, at in ledger if at >= since]
        before = len(receiver.accepted)
        detail = await send(
            world, ReplayWebhookV1(**envelope(contract), endpoint_id=endpoint_id, since=since)
        )
        assert f"{len(again)} messages due" in detail
        await until(lambda: len(receiver.accepted) >= before + len(again), "the replay", timeout=120)
        replayed = receiver.accepted[before:]
        assert [d.webhook_id for d in replayed] == again  # the same ids, in order
        assert all(verifies(d, first) and verifies(d, second) for d in replayed)

        # Rotate with no overlap: the first secret no longer signs.
        await send(
            world,
            RotateWebhookSecretV1(
                **envelope(contract),
                endpoint_id=endpoint_id,
                secret=third,
                previous_valid_until=datetime.now(UTC),
            ),
        )
        before = len(receiver.accepted)
        await send(world, ReplayWebhookV1(**envelope(contract), endpoint_id=endpoint_id, since=ledger[-1][3]))
        await until(lambda: len(receiver.accepted) > before, "a replay", timeout=60)
        last = receiver.accepted[-1]
        assert verifies(last, third) and not verifies(last, second) and not verifies(last, first)

        # Removed: the reversals that follow are not delivered.
        await send(world, RemoveWebhookV1(**envelope(contract), endpoint_id=endpoint_id))
        before = len(receiver.accepted)
        await produce(world.kafka, OUTCOMES, scenario.facts(2))
        expected = scenario.expected_ledger(2)
        assert await settled(world, contract, expected) == expected
        await asyncio.sleep(2.0)
        assert len(receiver.accepted) == before
        assert receiver.refused_signatures == 0
    finally:
        await receiver.stop()
