"""Commands on a contract's webhook endpoints, sent on `contracts.commands.v1` beside the ledger commands: a
finance system's https endpoint that receives every `payments.v1` message of the contract as a Standard
Webhooks request. The gateway checks who sends them and that the URL may be reached; the contracts service
decides them and records the outcome under the command id, as it does a dispute.

The signing secret travels in the register and rotate commands (the gateway makes it and shows it once);
`contracts.commands.v1` is written by the gateway alone and read by the contracts service alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, RootModel, StringConstraints

from .ledger_commands import _Command

EndpointId = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
# Standard Webhooks' symmetric secret: "whsec_" and base64 of 24 to 64 random bytes
SigningSecret = Annotated[str, StringConstraints(pattern=r"^whsec_[A-Za-z0-9+/]{32,88}={0,2}$")]
WebhookUrl = Annotated[str, StringConstraints(pattern=r"^https://[^\s]+$", max_length=2000)]


class RegisterWebhookV1(_Command):
    """The commissioner (or an operator) registers an https endpoint: from then on it receives every payment
    message of the contract, the ones already determined first, in determination order."""

    command: Literal["webhook.register"] = "webhook.register"
    endpoint_id: EndpointId
    url: WebhookUrl
    description: Annotated[str, StringConstraints(max_length=200)] = ""
    secret: SigningSecret


class RotateWebhookSecretV1(_Command):
    """A new signing secret; the one before stays valid (both signatures are sent) until `previous_valid_until`,
    so a receiver can switch over without refusing a delivery."""

    command: Literal["webhook.rotate_secret"] = "webhook.rotate_secret"
    endpoint_id: EndpointId
    secret: SigningSecret
    previous_valid_until: datetime


class ReplayWebhookV1(_Command):
    """Deliver again every message of the contract determined at or after `since` (and everything after it),
    in determination order, with the ids they had."""

    command: Literal["webhook.replay"] = "webhook.replay"
    endpoint_id: EndpointId
    since: datetime


class RemoveWebhookV1(_Command):
    """Stop delivering to an endpoint. Its delivery log stays readable."""

    command: Literal["webhook.remove"] = "webhook.remove"
    endpoint_id: EndpointId


WEBHOOK_COMMAND_PREFIX = "webhook."


class WebhookCommandV1(
    RootModel[
        Annotated[
            RegisterWebhookV1 | RotateWebhookSecretV1 | ReplayWebhookV1 | RemoveWebhookV1,
            Field(discriminator="command"),
        ]
    ]
):
    """Any command on a contract's webhook endpoints."""
