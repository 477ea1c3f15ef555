"""Webhooks' pure rules: the retry schedule, the secrets that sign during a rotation, requests signed as
Standard Webhooks (checked with the `standardwebhooks` library a receiver uses), addresses a URL may not reach,
and the commands as the contracts service decodes them."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from utfall_contracts.consumers import InvalidCommand, decode_command
from utfall_contracts.domain.webhooks import EndpointSecrets, RetryPolicy, accepted, message_id
from utfall_contracts.webhook_delivery import signed_request
from utfall_contracts.webhook_store import PendingMessage
from utfall_events.payments import PaymentV1
from utfall_events.webhooks import WebhookCommandV1
from utfall_gateway.routes.webhooks import ReplayRequest, new_secret
from utfall_platform.destinations import address_refusal, destination_refusal, url_refusal

EXAMPLES = Path(str(resources.files("utfall_events").joinpath("examples"))) / "messages"
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def example(name: str) -> dict[str, object]:
    message: dict[str, object] = json.loads((EXAMPLES / f"{name}.json").read_text())["message"]
    return message


def payment(name: str = "payment_triggered") -> PaymentV1:
    return PaymentV1.model_validate(example(name))


@given(st.integers(min_value=1, max_value=10_000))
def test_retries_double_from_the_first_delay_and_never_pass_the_longest(failed: int) -> None:
    policy = RetryPolicy(timedelta(seconds=10), timedelta(hours=1))
    delay = policy.delay(failed)
    assert timedelta(seconds=10) <= delay <= timedelta(hours=1)
    assert policy.delay(failed + 1) >= delay
    if failed <= 8:  # 10 s · 2^8 = 2,560 s: below the hour
        assert delay == timedelta(seconds=10 * 2 ** (failed - 1))


def test_a_message_is_retried_for_more_than_a_day_by_the_default_schedule() -> None:
    """The defaults (10 s doubling to an hour) never give up; a day of failures is about 30 attempts."""
    policy = RetryPolicy(timedelta(seconds=10), timedelta(hours=1))
    waited, attempts = timedelta(0), 0
    while waited < timedelta(days=1):
        attempts += 1
        waited += policy.delay(attempts)
    assert 25 <= attempts <= 35
    assert policy.delay(10_000) == timedelta(hours=1)


def test_the_previous_secret_signs_only_while_the_overlap_lasts() -> None:
    secrets = EndpointSecrets("whsec_new", "whsec_old", NOW + timedelta(hours=24))
    assert secrets.signing(NOW) == ["whsec_new", "whsec_old"]
    assert secrets.signing(NOW + timedelta(hours=24)) == ["whsec_new"]
    assert EndpointSecrets("whsec_only", None, None).signing(NOW) == ["whsec_only"]


def test_a_signed_request_verifies_with_the_standard_webhooks_library_and_a_tampered_one_does_not() -> None:
    entry = payment()
    old, new = new_secret(), new_secret()
    sent_at = datetime.now(UTC)
    body, headers = signed_request(PendingMessage(7, entry), [new, old], sent_at)
    assert headers["webhook-id"] == f"{entry.payment_id}:payment.triggered" == message_id(entry)
    assert PaymentV1.model_validate(json.loads(body)) == entry  # the body is the payments.v1 message
    for secret in (new, old):  # during a rotation a receiver holding either secret accepts the delivery
        assert Webhook(secret).verify(body, headers)["payment_id"] == entry.payment_id
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body.replace(b'"amount_ore":', b'"amount_ore":1'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body, {**headers, "webhook-id": f"{entry.payment_id}:payment.reversed"})
    stale = signed_request(PendingMessage(7, entry), [new], sent_at - timedelta(hours=1))
    with pytest.raises(WebhookVerificationError):  # a replayed old request is refused by its timestamp
        Webhook(new).verify(*stale)


def test_message_ids_differ_by_kind_and_stay_the_same_for_the_same_entry() -> None:
    ids = {
        message_id(payment(name)) for name in ("payment_triggered", "payment_reversed", "payment_disputed")
    }
    assert len(ids) == 3
    assert message_id(payment()) == message_id(payment())


def test_only_a_2xx_counts_as_delivered() -> None:
    assert accepted(200) and accepted(204)
    assert not any(accepted(code) for code in (301, 302, 307, 400, 410, 429, 500, 503))


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "not a host"),
        ("224.0.0.1", "not a host"),
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(address: str, kind: str) -> None:
    refusal = address_refusal(ipaddress.ip_address(address), allow_private=False)
    assert refusal is not None and kind in refusal
    if kind != "not a host":
        assert address_refusal(ipaddress.ip_address(address), allow_private=True) is None


def test_public_addresses_are_allowed() -> None:
    for address in ("8.8.8.8", "193.10.1.1", "2001:4860:4860::8888"):
        assert address_refusal(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://ekonomi.example.se/hook",
        "ftp://ekonomi.example.se/hook",
        "https:///hook",
        "https://user:pw@ekonomi.example.se/hook",
        "https://ekonomi.example.se:99999/hook",
    ],
)
def test_urls_that_are_not_plain_https_are_refused(url: str) -> None:
    assert url_refusal(url) is not None


async def test_a_url_is_refused_for_every_address_its_host_resolves_to() -> None:
    assert "loopback" in (await destination_refusal("https://localhost:8443/x", allow_private=False) or "")
    assert "link-local" in (
        await destination_refusal("https://169.254.169.254/latest", allow_private=False) or ""
    )
    assert "private" in (await destination_refusal("https://[fd12::1]/x", allow_private=False) or "")
    assert await destination_refusal("https://127.0.0.1:8443/x", allow_private=True) is None
    # refused whether the resolver answers "no such name" or does not answer in time
    assert "resolve" in (
        await destination_refusal("https://no-such-host.invalid/x", allow_private=False) or ""
    )


@pytest.mark.parametrize(
    "name", ["register_webhook", "rotate_webhook_secret", "replay_webhook", "remove_webhook"]
)
def test_webhook_commands_decode_beside_the_ledger_commands(name: str) -> None:
    raw = json.dumps(example(name)).encode()
    decoded = decode_command(raw)
    assert isinstance(decoded, WebhookCommandV1)
    assert decoded.root.command == example(name)["command"]


def test_a_webhook_command_with_a_plain_http_url_or_a_weak_secret_is_bad_input() -> None:
    register = example("register_webhook")
    for changed in (
        {"url": "http://ekonomi.example.se/x"},
        {"secret": "whsec_short"},
        {"command": "webhook.nope"},
    ):
        with pytest.raises(InvalidCommand):
            decode_command(json.dumps({**register, **changed}).encode())


@pytest.mark.parametrize(
    "since", [0, 1764925200, "1764925200", 0.5, True, "2026-12-05T10:00:00", "2026-12-05", ""]
)
def test_a_replay_starts_at_an_iso_moment_with_its_offset_never_a_unix_time(since: object) -> None:
    with pytest.raises(ValidationError):
        ReplayRequest.model_validate({"since": since})
    taken = ReplayRequest.model_validate({"since": "2026-12-05T10:00:00+01:00"})
    assert taken.since == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
