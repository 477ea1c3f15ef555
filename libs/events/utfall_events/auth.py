"""`auth.keys.v1` (compacted, keyed by key id): API keys as hashes, never the secret itself."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["provider", "municipality", "finance", "operator", "assessor", "register"]
ROLES: tuple[Role, ...] = ("provider", "municipality", "finance", "operator", "assessor", "register")


class PersonV1(BaseModel):
    """A person signed in through the identity provider: the token's subject and display name. Recorded on what a
    person does (disputes, resolutions, period closings, comments, webhook endpoints)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str = Field(min_length=1, max_length=255, description="the IdP's stable id of the person (sub)")
    name: str = Field(min_length=1, max_length=200, description="the display name in the token")


class ApiKeyV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str
    secret_sha256: str
    role: Role
    provider_id: str | None = None
    municipality_code: str | None = None
    funder: str | None = None
    contract_ids: list[str] = Field(
        default_factory=list, description="an assessor's contracts: the only ones the key may see and dispute"
    )
    register_id: str | None = Field(
        None, description="a register holder's register: the only one whose extracts the key may send"
    )
    label: str = ""
    created_at: datetime
    revoked_at: datetime | None = None
