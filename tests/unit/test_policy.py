"""The gateway's one authorisation policy (`domain/policy.py`): who is party to a contract, what each party
may do on it, whose figures a reader sees exactly. The expected table is written out here, by hand, from the
roles' table in docs/architecture.md; the end-to-end role matrix asks the routes the same over HTTP."""

from __future__ import annotations

import pytest

from utfall_gateway.domain.policy import (
    CONTRACT_ACTS,
    PUBLIC,
    ContractParties,
    Principal,
    contract_refusal,
    own_provider,
    party_to,
    sees_everything_live,
    sees_exactly,
    sees_provider_records,
    statement_provider,
)

pytestmark = pytest.mark.unit

CONTRACT = ContractParties("c1", "0180", "fonden", ("hvb-eken", "hvb-granen"))
PARTIES = {
    "operator": Principal("operator", "k0"),
    "municipality": Principal("municipality", "k1", municipality_code="0180"),
    "finance": Principal("finance", "k2", funder="fonden"),
    "provider": Principal("provider", "k3", provider_id="hvb-eken"),
    "assessor": Principal("assessor", "k4", contract_ids=("c1",)),
}
STRANGERS = [
    PUBLIC,
    Principal("municipality", "k5", municipality_code="1480"),
    Principal("finance", "k6", funder="andra"),
    Principal("provider", "k7", provider_id="hvb-ljungen"),
    Principal("assessor", "k8", contract_ids=("c2",)),
    Principal("register", "k9", register_id="socialregistret"),
]
# act -> the parties that may do it
EXPECTED = {
    "participants": {"operator", "municipality", "provider", "assessor"},
    "forecast": {"operator", "municipality", "finance", "assessor"},
    "indigo": {"operator", "municipality", "finance", "assessor"},
    "dispute": {"assessor", "finance"},
    "sample": {"operator", "municipality", "finance", "assessor"},
    "resolve_dispute": {"municipality"},
    "close_period": {"municipality"},
    "webhooks": {"operator", "municipality"},
}


def test_a_contract_is_seen_by_its_parties_only() -> None:
    assert all(party_to(who, CONTRACT) for who in PARTIES.values())
    assert not any(party_to(who, CONTRACT) for who in STRANGERS)
    assert all(contract_refusal(who, CONTRACT) == "This contract is outside your scope." for who in STRANGERS)


@pytest.mark.parametrize("act", sorted(EXPECTED))
def test_each_party_may_do_what_the_table_says_and_is_told_why_not(act: str) -> None:
    assert set(CONTRACT_ACTS) == set(EXPECTED)
    allowed = {role for role, who in PARTIES.items() if contract_refusal(who, CONTRACT, act) is None}  # type: ignore[arg-type]
    assert allowed == EXPECTED[act]
    for role, who in PARTIES.items():
        if role not in allowed:
            refusal = contract_refusal(who, CONTRACT, act)  # type: ignore[arg-type]
            assert refusal and refusal != "This contract is outside your scope."
    for who in STRANGERS:  # a stranger is told it is outside its scope, whatever it asks
        assert contract_refusal(who, CONTRACT, act) == "This contract is outside your scope."  # type: ignore[arg-type]


def test_whose_figures_a_reader_sees_exactly() -> None:
    eken, kommun = PARTIES["provider"], PARTIES["municipality"]
    assert sees_exactly(PARTIES["operator"], {"provider_id": "x"}, {})
    assert sees_exactly(eken, {"provider_id": "hvb-eken"}, {}) and not sees_exactly(
        eken, {"provider_id": "x"}, {}
    )
    assert sees_exactly(eken, {}, {"provider_id": "hvb-eken"})  # a filtered question with no provider column
    assert sees_exactly(kommun, {"municipality_code": "0180"}, {}) and not sees_exactly(kommun, {}, {})
    assert not any(sees_exactly(w, {"provider_id": "hvb-eken"}, {}) for w in (PUBLIC, PARTIES["finance"]))
    assert [role for role, who in PARTIES.items() if sees_everything_live(who)] == ["operator"]
    assert sees_provider_records(eken, "hvb-eken") and not sees_provider_records(eken, "hvb-granen")
    assert not sees_provider_records(PARTIES["assessor"], "hvb-eken")
    assert own_provider(eken) == "hvb-eken" and own_provider(PARTIES["finance"]) is None


def test_a_provider_gets_its_own_statement_whatever_it_asks() -> None:
    assert statement_provider(PARTIES["provider"], CONTRACT, "hvb-granen") == "hvb-eken"
    assert statement_provider(PARTIES["finance"], CONTRACT, "hvb-granen") == "hvb-granen"
    assert statement_provider(PARTIES["finance"], CONTRACT, None) is None
    assert statement_provider(PARTIES["finance"], CONTRACT, "hvb-ljungen") is False
