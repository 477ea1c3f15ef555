"""Statements as Peppol BIS Billing 3.0 e-invoices, checked by the official rules (tests/peppol.py: the UBL 2.1
schema, CEN-EN16931-UBL and PEPPOL-EN16931-UBL as OpenPeppol ships them) over generated statements: payments,
reversals with reasons, disputes and their resolutions, amounts capped to odd öre, nets of either sign."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from utfall_events.payments import signed_amount
from utfall_gateway.domain.einvoice import NS, NothingToInvoice, Party, einvoice, issue_date, lines

from ..peppol import validator

SELLER = Party("HVB Eken AB", "556016-0680")
BUYER = Party("Stockholms stad", "212000-0142")
KINDS = ("payment.triggered", "payment.reversed", "payment.disputed", "payment.dispute_resolved")
MILESTONES = ("planned-discharge", "no-replacement-12m", "education-or-work-12m")


def statement(entries: list[dict[str, Any]], closed: str | None = None) -> dict[str, Any]:
    return {
        "contract_id": "hvb-ungdom-stockholm",
        "contract_name": "Utfallskontrakt HVB ungdom – Stockholms stad",
        "provider_id": "hvb-eken",
        "period": "2026-Q1",
        "from": "2026-01-01",
        "to": "2026-03-31",
        "currency": "SEK",
        "closed": {"closed_at": closed} if closed else None,
        "net_ore": sum(signed_amount(e["kind"], e["amount_ore"]) for e in entries),
        "entries": entries,
    }


entry = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(KINDS),
        "milestone_id": st.sampled_from(MILESTONES),
        # contract prices, and what a cap leaves of them (any öre)
        "amount_ore": st.one_of(st.sampled_from([5_000_000, 7_500_000, 4_000_000]), st.integers(1, 10**9)),
        "reason": st.sampled_from(
            [
                None,
                "outcome corrected; recorded when a reported outcome changed",
                "retracted by the provider",
                "dispute upheld",
            ]
        ),
    }
)


def amount(document: etree._Element, path: str) -> Decimal:
    return Decimal(document.findtext(path, namespaces=NS) or "nan")


def render(s: dict[str, Any]) -> bytes:
    return einvoice(s, seller=SELLER, buyer=BUYER, buyer_reference="SOC-UTFALL-HVB", payment_terms_days=30)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entry, min_size=1, max_size=25))
def test_every_statement_is_a_valid_bis_billing_document_equal_to_its_net(
    entries: list[dict[str, Any]],
) -> None:
    s = statement(entries)
    if not lines(entries):
        with pytest.raises(NothingToInvoice):
            render(s)
        return
    document = render(s)
    report = validator().validate(document)
    assert report.schema_errors == [], report.schema_errors
    assert report.fatal == [], report.fatal
    root = etree.fromstring(document)
    kind = etree.QName(root).localname
    assert kind == ("CreditNote" if s["net_ore"] < 0 else "Invoice")
    payable = amount(root, "cac:LegalMonetaryTotal/cbc:PayableAmount")
    assert payable == Decimal(abs(s["net_ore"])) / 100  # to the öre
    line_name = "cac:CreditNoteLine" if kind == "CreditNote" else "cac:InvoiceLine"
    line_total = sum(Decimal(e.text or "0") for e in root.findall(f"{line_name}/cbc:LineExtensionAmount", NS))
    assert line_total == payable
    reversals = [e for e in entries if e["kind"] == "payment.reversed"]
    notes = [n.text or "" for n in root.findall(f"{line_name}/cbc:Note", NS)]
    assert bool(reversals) == bool(notes) and all(n.startswith("Återföring: ") for n in notes)
    assert all("after:" not in n for n in notes)  # the reason, not the ledger's internal trail


def test_the_document_names_the_contract_period_parties_and_exemption() -> None:
    entries = [
        {
            "kind": "payment.triggered",
            "milestone_id": "planned-discharge",
            "amount_ore": 5_000_000,
            "reason": None,
        },
        {
            "kind": "payment.triggered",
            "milestone_id": "planned-discharge",
            "amount_ore": 5_000_000,
            "reason": None,
        },
    ]
    document = render(statement(entries, closed="2026-04-03T09:12:00+00:00"))
    assert validator().validate(document).findings == []  # not even a warning
    root = etree.fromstring(document)
    assert root.findtext("cac:ContractDocumentReference/cbc:ID", namespaces=NS) == "hvb-ungdom-stockholm"
    assert root.findtext("cac:InvoicePeriod/cbc:StartDate", namespaces=NS) == "2026-01-01"
    assert root.findtext("cac:InvoicePeriod/cbc:EndDate", namespaces=NS) == "2026-03-31"
    assert root.findtext("cbc:IssueDate", namespaces=NS) == "2026-04-03"  # the day the period was closed
    assert root.findtext("cbc:DueDate", namespaces=NS) == "2026-05-03"
    seller = root.find("cac:AccountingSupplierParty/cac:Party", NS)
    assert seller is not None
    assert seller.findtext("cbc:EndpointID", namespaces=NS) == "5560160680"
    assert seller.find("cbc:EndpointID", NS).get("schemeID") == "0007"  # type: ignore[union-attr]
    assert root.findtext("cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID", namespaces=NS) == "E"
    assert (
        root.findtext(
            "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:TaxExemptionReasonCode", namespaces=NS
        )
        == "VATEX-EU-132-1G"
    )
    (line,) = root.findall("cac:InvoiceLine", NS)  # two payments of one milestone at one price: one line
    assert line.findtext("cbc:InvoicedQuantity", namespaces=NS) == "2"
    assert line.findtext("cac:Price/cbc:PriceAmount", namespaces=NS) == "50000.00"


def test_a_document_never_changes_once_its_period_is_closed() -> None:
    entries = [
        {"kind": "payment.triggered", "milestone_id": "planned-discharge", "amount_ore": 1, "reason": None}
    ]
    open_period = statement(entries)
    assert issue_date(open_period).isoformat() == "2026-04-01"  # the day after the period
    closed = statement(entries, closed="2026-04-10T08:00:00+00:00")
    assert render(closed) == render(statement(entries, closed="2026-04-10T08:00:00+00:00"))


def test_the_validator_refuses_what_breaks_the_rules() -> None:
    """The rules run and bite: the control for the zero findings above."""
    entries = [
        {"kind": "payment.triggered", "milestone_id": "planned-discharge", "amount_ore": 100, "reason": None}
    ]
    document = render(statement(entries))
    broken = document.replace(b"<cbc:BuyerReference>SOC-UTFALL-HVB</cbc:BuyerReference>", b"")
    assert {f.rule for f in validator().validate(broken).fatal} == {"PEPPOL-EN16931-R003"}
    wrong_total = document.replace(
        b'<cbc:PayableAmount currencyID="SEK">1.00', b'<cbc:PayableAmount currencyID="SEK">1.01'
    )
    assert "BR-CO-16" in {f.rule for f in validator().validate(wrong_total).fatal}
    misplaced = document.replace(b"<cbc:ProfileID>", b"<cbc:Note>x</cbc:Note><cbc:ProfileID>")
    assert validator().validate(misplaced).schema_errors
