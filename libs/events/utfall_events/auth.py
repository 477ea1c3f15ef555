"""`auth.keys.v1` (compacted, keyed by key id): API keys as hashes, never the secret itself."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["provider", "municipality", "finance", "operator"]


class ApiKeyV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str
    secret_sha256: str
    role: Role
    provider_id: str | None = None
    municipality_code: str | None = None
    funder: str | None = None
    label: str = ""
    created_at: datetime
    revoked_at: datetime | None = None
