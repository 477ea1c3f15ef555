"""`registry.providers.v1` (compacted, keyed by provider id): the care providers Utfall knows.

Operators register providers (`utfall-admin providers`, `POST /v1/admin/providers`); every service follows the
topic in memory. Events, keys, aggregated submissions and contracts naming a provider that is not registered
(or has been retired) are refused with a reason. Nothing outside is trusted by name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .care import FreeText, ProviderId, UnitId
from .personnummer import luhn_ok
from .vocabulary import CareType


def _organisation_number(value: str) -> str:
    digits = value.replace("-", "")
    if not luhn_ok(digits):
        raise ValueError("the check digit does not match (Luhn)")
    # Legal entities have a third digit of 2 or more; a sole trader's number is a personnummer: refused.
    if int(digits[2]) < 2:
        raise ValueError(
            "must be a legal entity's organisation number (third digit 2 or more), not a personnummer"
        )
    return value


OrganisationNumber = Annotated[
    str,
    StringConstraints(pattern=r"^\d{6}-\d{4}$"),
    AfterValidator(_organisation_number),
    Field(description="Bolagsverket organisation number NNNNNN-NNNN (a legal entity's)"),
]


class ProviderRegistrationV1(BaseModel):
    """What an operator registers. An empty `care_types` or `units` list is not a wildcard: it is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider_id: ProviderId
    display_name: Annotated[FreeText, StringConstraints(min_length=2, max_length=120, strip_whitespace=True)]
    organisation_number: OrganisationNumber
    care_types: list[CareType] = Field(min_length=1, max_length=10)
    units: list[UnitId] = Field(min_length=1, max_length=500)


class ProviderV1(ProviderRegistrationV1):
    """One registered provider as the registry topic carries it."""

    registered_at: datetime
    retired_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.retired_at is None
