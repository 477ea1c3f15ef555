"""A provider's settlement statement as a Peppol BIS Billing 3.0 e-invoice (UBL 2.1), as a pure function.

The provider is the seller and the commissioning municipality the buyer: the provider is owed the outcome
payments, and every municipal finance system takes BIS Billing 3.0 invoices from its suppliers (the
self-billing profile, where the buyer issues, needs an agreement per supplier and few systems take it).
A period with a positive net is an Invoice (type 380), a negative one a CreditNote (381). Each line is one
milestone at one unit price (the contract version's), paid or reversed, with reversals as lines of their own
(negative quantities on an invoice, credited ones on a credit note) carrying their reason; the total equals
the statement's net to the öre. Outcome payments for social care are exempt from VAT: category E, exemption
reason VATEX-EU-132-1G (Directive 2006/112/EC art. 132(1)(g), services closely linked to welfare and social
security work; in Swedish law, social care is exempt under the mervärdesskattelag's chapter on exemptions).
Disputes move no money (an upheld one is followed by its reversal), so they are not lines.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
NS = {
    "Invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "CreditNote": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
SWEDISH_ORGANISATION = "0007"  # the EAS/ICD scheme of Swedish organisation numbers
VAT_EXEMPTION_CODE = "VATEX-EU-132-1G"
VAT_EXEMPTION_TEXT = "Undantaget från mervärdesskatt: social omsorg (direktiv 2006/112/EG art. 132.1 g)"
# Seller tax registration (BT-32): the Swedish rules (SE-R-005) ask for exactly this text.
F_TAX = "Godkänd för F-skatt"


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    organisation_number: str  # NNNNNN-NNNN
    peppol_id: str | None = None  # scheme:id; derived from the organisation number when absent

    @property
    def digits(self) -> str:
        return self.organisation_number.replace("-", "")

    @property
    def endpoint(self) -> tuple[str, str]:
        scheme, _, value = (self.peppol_id or f"{SWEDISH_ORGANISATION}:{self.digits}").partition(":")
        return scheme, value


@dataclass(frozen=True, slots=True)
class Line:
    milestone_id: str
    kind: str  # payment.triggered | payment.reversed
    unit_ore: int
    quantity: int  # signed as on an invoice: a reversal takes back
    reason: str | None

    @property
    def amount_ore(self) -> int:
        return self.quantity * self.unit_ore


class NothingToInvoice(ValueError):
    """The period moved no money for the provider: no document."""


def lines(entries: Sequence[Mapping[str, Any]]) -> list[Line]:
    """The statement's paid and reversed entries, one line per milestone, kind, unit price and reason."""
    grouped: dict[tuple[str, str, int, str | None], int] = {}
    for e in entries:
        if e["kind"] not in ("payment.triggered", "payment.reversed"):
            continue  # disputes and their resolutions move no money
        reason = _reversal_reason(e["reason"]) if e["kind"] == "payment.reversed" else None
        key = (e["milestone_id"], e["kind"], int(e["amount_ore"]), reason)
        grouped[key] = grouped.get(key, 0) + (1 if e["kind"] == "payment.triggered" else -1)
    return [
        Line(milestone, kind, unit, quantity, reason)
        for (milestone, kind, unit, reason), quantity in sorted(
            grouped.items(),
            key=lambda item: (item[0][1] != "payment.triggered", item[0][0], item[0][2], item[0][3] or ""),
        )
    ]


def _reversal_reason(reason: str | None) -> str:
    return (reason or "reversed").split(";", 1)[0].strip() or "reversed"


def document_id(statement: Mapping[str, Any]) -> str:
    return f"{statement['contract_id']}-{statement['period']}-{statement['provider_id']}"


def issue_date(statement: Mapping[str, Any]) -> date:
    """The day the commissioner closed the period; before that, the day after it ended. Once the period is
    closed the document never changes (its entries were fixed when the period ended)."""
    closed = statement.get("closed")
    if closed:
        return date.fromisoformat(closed["closed_at"][:10])
    return date.fromisoformat(statement["to"]) + timedelta(days=1)


def einvoice(
    statement: Mapping[str, Any],
    *,
    seller: Party,
    buyer: Party,
    buyer_reference: str,
    payment_terms_days: int,
) -> bytes:
    """The UBL document of one provider's statement: an Invoice when the net is positive, a CreditNote when it
    is negative. Raises NothingToInvoice for a period without payments or reversals."""
    items = lines(statement["entries"])
    if not items:
        raise NothingToInvoice(
            f"no payment or reversal for {statement['provider_id']} in {statement['period']}"
        )
    net = sum(line.amount_ore for line in items)
    assert net == statement["net_ore"], "the lines must add up to the statement"
    credit = net < 0
    sign = -1 if credit else 1
    root_name = "CreditNote" if credit else "Invoice"
    ET.register_namespace("", NS[root_name])
    ET.register_namespace("cac", NS["cac"])
    ET.register_namespace("cbc", NS["cbc"])
    root = ET.Element(f"{{{NS[root_name]}}}{root_name}")
    issued = issue_date(statement)

    cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    cbc(root, "ProfileID", PROFILE_ID)
    cbc(root, "ID", document_id(statement))
    cbc(root, "IssueDate", issued.isoformat())
    if not credit:
        cbc(root, "DueDate", (issued + timedelta(days=payment_terms_days)).isoformat())
    cbc(root, "InvoiceTypeCode" if not credit else "CreditNoteTypeCode", "381" if credit else "380")
    cbc(
        root,
        "Note",
        f"Utfallsersättning enligt {statement['contract_name']}, period {statement['period']} "
        f"(avräkning {statement['from']} – {statement['to']}, svensk tid).",
    )
    cbc(root, "DocumentCurrencyCode", statement["currency"])
    cbc(root, "BuyerReference", buyer_reference)
    period = cac(root, "InvoicePeriod")
    cbc(period, "StartDate", statement["from"])
    cbc(period, "EndDate", statement["to"])
    contract_reference = cac(root, "ContractDocumentReference")
    cbc(contract_reference, "ID", statement["contract_id"])
    _party(cac(root, "AccountingSupplierParty"), seller, seller_tax=True)
    _party(cac(root, "AccountingCustomerParty"), buyer, seller_tax=False)
    terms = cac(root, "PaymentTerms")
    cbc(terms, "Note", f"{payment_terms_days} dagar netto")
    total = sign * net
    tax_total = cac(root, "TaxTotal")
    _amount(tax_total, "TaxAmount", 0)
    subtotal = cac(tax_total, "TaxSubtotal")
    _amount(subtotal, "TaxableAmount", total)
    _amount(subtotal, "TaxAmount", 0)
    _tax_category(cac(subtotal, "TaxCategory"), exemption=True)
    monetary = cac(root, "LegalMonetaryTotal")
    for name in ("LineExtensionAmount", "TaxExclusiveAmount", "TaxInclusiveAmount", "PayableAmount"):
        _amount(monetary, name, total)
    for number, line in enumerate(items, start=1):
        _line(root, number, line, sign, credit)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return document


def cbc(parent: ET.Element, name: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NS['cbc']}}}{name}", attributes)
    element.text = text
    return element


def cac(parent: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{NS['cac']}}}{name}")


def _kronor(ore: int) -> str:
    sign = "-" if ore < 0 else ""
    return f"{sign}{abs(ore) // 100}.{abs(ore) % 100:02d}"


def _amount(parent: ET.Element, name: str, ore: int) -> None:
    cbc(parent, name, _kronor(ore), currencyID="SEK")


def _party(holder: ET.Element, who: Party, *, seller_tax: bool) -> None:
    party = cac(holder, "Party")
    scheme, endpoint = who.endpoint
    cbc(party, "EndpointID", endpoint, schemeID=scheme)
    cbc(cac(party, "PartyName"), "Name", who.name)
    address = cac(party, "PostalAddress")
    cbc(cac(address, "Country"), "IdentificationCode", "SE")
    if seller_tax:
        tax = cac(party, "PartyTaxScheme")
        cbc(tax, "CompanyID", F_TAX)
        cbc(cac(tax, "TaxScheme"), "ID", "TAX")
    legal = cac(party, "PartyLegalEntity")
    cbc(legal, "RegistrationName", who.name)
    cbc(legal, "CompanyID", who.digits, schemeID=SWEDISH_ORGANISATION)


def _tax_category(category: ET.Element, *, exemption: bool) -> None:
    cbc(category, "ID", "E")
    cbc(category, "Percent", "0")
    if exemption:
        cbc(category, "TaxExemptionReasonCode", VAT_EXEMPTION_CODE)
        cbc(category, "TaxExemptionReason", VAT_EXEMPTION_TEXT)
    cbc(cac(category, "TaxScheme"), "ID", "VAT")


def _line(root: ET.Element, number: int, line: Line, sign: int, credit: bool) -> None:
    element = cac(root, "CreditNoteLine" if credit else "InvoiceLine")
    cbc(element, "ID", str(number))
    if line.reason is not None:
        cbc(element, "Note", f"Återföring: {line.reason}")
    cbc(
        element,
        "CreditedQuantity" if credit else "InvoicedQuantity",
        str(sign * line.quantity),
        unitCode="C62",
    )
    _amount(element, "LineExtensionAmount", sign * line.amount_ore)
    item = cac(element, "Item")
    what = "Återförd utfallsersättning" if line.kind == "payment.reversed" else "Utfallsersättning"
    cbc(item, "Name", f"{what}: {line.milestone_id}")
    cbc(cac(item, "SellersItemIdentification"), "ID", line.milestone_id)
    _tax_category(cac(item, "ClassifiedTaxCategory"), exemption=False)
    _amount(cac(element, "Price"), "PriceAmount", line.unit_ore)
