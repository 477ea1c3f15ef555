"""People, from their identity provider's tokens: the one place where token claims become a role and a scope.

The claim names are settings (`UTFALL_OIDC_CLAIM_NAMES`, JSON; `utfall_platform.oidc.ClaimNames`), so any OIDC
provider can carry them under its own names; the local Keycloak's realm maps user attributes to the defaults. A person may hold the roles a
person can act in; `register` is a machine's role (a register holder's upload key) and is refused here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from utfall_platform.oidc import ClaimNames

from .policy import Principal, RoleName

PERSON_ROLES: frozenset[str] = frozenset({"provider", "municipality", "finance", "operator", "assessor"})


class NotAPerson(ValueError):
    """The token is valid, but its claims do not make a person of Utfall (no role, or no scope for it)."""


def person_principal(claims: Mapping[str, Any], names: ClaimNames = ClaimNames()) -> Principal:
    """Who a verified token speaks for. Each role needs its scope, as a key of that role does."""
    role = names.text(claims, names.role)
    if role not in PERSON_ROLES or role not in get_args(RoleName):
        raise NotAPerson("the token names no role of Utfall for a person")
    raw_contracts = claims.get(names.contract_ids) or []
    contracts = tuple(
        c
        for c in ([raw_contracts] if isinstance(raw_contracts, str) else raw_contracts)
        if isinstance(c, str)
    )
    principal = Principal(
        role,  # type: ignore[arg-type]  # checked against RoleName above
        key_id=None,
        provider_id=names.text(claims, names.provider_id) if role == "provider" else None,
        municipality_code=names.text(claims, names.municipality_code) if role == "municipality" else None,
        funder=names.text(claims, names.funder) if role == "finance" else None,
        contract_ids=contracts if role == "assessor" else (),
        person=str(claims["sub"]),
        person_name=names.text(claims, names.display_name)
        or names.text(claims, "preferred_username")
        or str(claims["sub"]),
    )
    needed = {
        "provider": principal.provider_id,
        "municipality": principal.municipality_code,
        "finance": principal.funder,
        "assessor": principal.contract_ids or None,
        "operator": "all",
    }[role]
    if needed is None:
        raise NotAPerson(f"the token's role {role} comes without its scope")
    return principal
