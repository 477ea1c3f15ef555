"""Who may see and do what: the gateway's one authorisation policy, as pure functions of who is asking.

Every route and page asks it, through `auth.py` (which turns a refusal into 403 problem details); none
decides by role on its own. The same rules, as a table, are in docs/architecture.md ("Roles"), and the
end-to-end role matrix (`tests/e2e/test_gateway.py`) asks every route as every role.

- An operator sees everything, live and exact.
- A provider sees its own records exactly (its cells, events, statements, agreement with registers) and
  everyone else's as releases publish them; a municipality its own placements likewise.
- A contract is seen by its parties only: its commissioning municipality, its funder (a finance key), its
  providers and its assessor; what each party may do on it is `CONTRACT_ACTS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from utfall_events.auth import ApiKeyV1

RoleName = Literal["public", "provider", "municipality", "finance", "operator", "assessor", "register"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a role from an API key, with the key's scope, or the anonymous public."""

    role: RoleName
    key_id: str | None = None
    provider_id: str | None = None
    municipality_code: str | None = None
    funder: str | None = None
    contract_ids: tuple[str, ...] = ()
    register_id: str | None = None
    # a person signed in through the identity provider: their subject and display name (None for keys)
    person: str | None = None
    person_name: str | None = None

    @property
    def is_public(self) -> bool:
        return self.role == "public"

    @property
    def actor(self) -> str:
        """Who, in the audit trail and on commands: a person, else the key."""
        if self.person is not None:
            return f"person:{self.person}"
        if self.key_id is not None:
            return f"key:{self.key_id}"
        return "public"

    def scope(self) -> dict[str, Any]:
        """What the principal is limited to, as the audit trail records it."""
        found: dict[str, Any] = {
            "provider_id": self.provider_id,
            "municipality_code": self.municipality_code,
            "funder": self.funder,
            "contract_ids": list(self.contract_ids) or None,
            "register_id": self.register_id,
        }
        return {k: v for k, v in found.items() if v is not None}


PUBLIC = Principal("public")


def principal_of(key: ApiKeyV1) -> Principal:
    """Who a valid key speaks for."""
    return Principal(
        key.role,
        key.key_id,
        key.provider_id,
        key.municipality_code,
        key.funder,
        tuple(key.contract_ids),
        key.register_id,
    )


# --- figures and records -------------------------------------------------------------------------------------
def sees_everything_live(who: Principal) -> bool:
    """Answers straight from the read models, every cell exact: operators only (everyone else's figures
    outside their own scope come from releases)."""
    return who.role == "operator"


def sees_exactly(who: Principal, dims: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    """Whether a cell (its dimensions, or the query's filters where it has none) is the reader's own."""
    if who.role == "operator":
        return True
    if who.role == "provider" and who.provider_id:
        return bool(dims.get("provider_id", filters.get("provider_id")) == who.provider_id)
    if who.role == "municipality" and who.municipality_code:
        return bool(dims.get("municipality_code", filters.get("municipality_code")) == who.municipality_code)
    return False


def sees_provider_records(who: Principal, provider_id: str) -> bool:
    """A provider's records one by one (its events' status, its agreement with registers, its scorecard's
    exact figures): the provider itself and operators."""
    return who.role == "operator" or (who.role == "provider" and who.provider_id == provider_id)


def own_provider(who: Principal) -> str | None:
    """The one provider whose rows alone the reader sees, where a route lists rows of several (a provider's
    key); None: no such limit."""
    return who.provider_id if who.role == "provider" else None


def uses_provider_pages(key: ApiKeyV1) -> bool:
    """The providers' pages sign in with a provider's key only."""
    return key.role == "provider" and bool(key.provider_id)


# Role-gated routes: who may call them at all (a route may narrow further by scope).
SIGNAL_READERS: tuple[RoleName, ...] = ("operator", "assessor")
AGREEMENT_READERS: tuple[RoleName, ...] = ("operator", "provider")


def watches_every_provider(who: Principal) -> bool:
    """Signals of every provider (operators); an assessor watches its contracts' providers only."""
    return who.role == "operator"


# --- contracts -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ContractParties:
    contract_id: str
    commissioner_municipality: str | None
    funder: str | None
    provider_ids: tuple[str, ...]

    @classmethod
    def of(cls, contract: Mapping[str, Any]) -> ContractParties:
        """From a contract as the read model holds it."""
        return cls(
            contract["contract_id"],
            contract["commissioner_municipality"],
            contract["funder"],
            tuple(contract["provider_ids"]),
        )


def party_to(who: Principal, contract: ContractParties) -> bool:
    """Whether the reader is one of the contract's parties (or an operator)."""
    if who.role == "operator":
        return True
    if who.role == "municipality":
        return contract.commissioner_municipality == who.municipality_code
    if who.role == "finance":
        return contract.funder == who.funder
    if who.role == "provider":
        return who.provider_id in contract.provider_ids
    if who.role == "assessor":
        return contract.contract_id in who.contract_ids
    return False


ContractAct = Literal[
    "participants", "forecast", "indigo", "dispute", "sample", "resolve_dispute", "close_period", "webhooks"
]

# What each party may do on a contract it is party to, and the refusal in words for the others.
CONTRACT_ACTS: Mapping[ContractAct, tuple[frozenset[RoleName], str]] = {
    "participants": (
        frozenset({"operator", "municipality", "provider", "assessor"}),
        "Finance keys see payments, not participants.",
    ),
    "forecast": (
        frozenset({"operator", "municipality", "finance", "assessor"}),
        "The forecast is for the commissioner, the funder and the assessor.",
    ),
    "indigo": (
        frozenset({"operator", "municipality", "finance", "assessor"}),
        "The export is for the commissioner, the funder and the assessor.",
    ),
    "dispute": (
        frozenset({"assessor", "finance"}),
        "Only the contract's assessor or its funder may dispute a payment.",
    ),
    "sample": (
        frozenset({"assessor", "finance", "municipality", "operator"}),
        "Samples are for the assessor, the funder, the commissioner and operators.",
    ),
    "resolve_dispute": (
        frozenset({"municipality"}),
        "Only the contract's commissioner (its municipality) may do this.",
    ),
    "close_period": (
        frozenset({"municipality"}),
        "Only the contract's commissioner (its municipality) may do this.",
    ),
    "webhooks": (
        frozenset({"municipality", "operator"}),
        "Webhook endpoints are registered and read by the contract's commissioner and operators.",
    ),
}

OUTSIDE_SCOPE = "This contract is outside your scope."


def contract_refusal(who: Principal, contract: ContractParties, act: ContractAct | None = None) -> str | None:
    """Why the reader may not see the contract (or do `act` on it), in words; None: it may."""
    if not party_to(who, contract):
        return OUTSIDE_SCOPE
    if act is not None:
        roles, refusal = CONTRACT_ACTS[act]
        if who.role not in roles:
            return refusal
    return None


def statement_provider(
    who: Principal, contract: ContractParties, asked: str | None
) -> str | Literal[False] | None:
    """Whose statement the reader gets: a provider its own, whatever it asks; anyone else the provider it
    names, which must be party to the contract (False: it is not), or every provider's (None)."""
    if who.role == "provider":
        return who.provider_id
    if asked is not None and asked not in contract.provider_ids:
        return False
    return asked
