"""Settlement statements per contract, period and provider: JSON, CSV and a printable HTML page
(`statements.py` computes them; the ledger is read through `readmodel/contracts.py`)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from utfall_platform.problems import Problem, problem_responses

from ..auth import Authenticated, Principal
from ..domain.einvoice import NothingToInvoice, Party, document_id, einvoice
from ..domain.policy import ContractParties, statement_provider
from ..domain.statements import CSV_COLUMNS, Period, parse_period, periods_between, statement
from ..readmodel import contracts as contracts_read
from ..state import gateway_state
from ..web.rendering import html_page, templates
from .contracts import ContractId, visible_contract

router = APIRouter(prefix="/v1", tags=["contracts"], responses=problem_responses(400, 401, 403, 404, 422))
PeriodText = Annotated[str, Path(pattern=r"^20\d\d-(Q[1-4]|0[1-9]|1[0-2])$", examples=["2026-Q1", "2026-03"])]
ProviderFilter = Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9\-]+$", max_length=63)]
Format = Annotated[Literal["json", "csv", "html"], Query()]


def period_kind(contract: Any) -> Literal["month", "quarter"]:
    kind = dict(contract["definition"]).get("statement_period", "quarter")
    return "month" if kind == "month" else "quarter"


def _provider(who: Principal, contract: Any, provider_id: str | None) -> str | None:
    """A provider sees its own statement only; others may ask for one provider of the contract."""
    whose = statement_provider(who, ContractParties.of(contract), provider_id)
    if whose is False:
        raise Problem(404, "not-found", "This provider is not party to the contract.")
    return whose


class StatementLineOut(BaseModel):
    entry_id: str
    kind: str
    payment_id: str
    milestone_id: str
    measure_id: str
    measure_version: int
    contract_version: int
    provider_id: str
    subject_ref: str
    amount_ore: int
    signed_amount_ore: int
    evidence_event_ids: list[str]
    determined_at: str
    reason: str | None


class ClosureOut(BaseModel):
    """The commissioner's closing of the period, with the contract's totals it recorded."""

    closed_at: str
    closed_by_key_id: str = Field(description="the key's id, or person:<subject> when a person closed it")
    closed_by_name: str | None = Field(
        None, description="the person who closed it, when a person signed in did"
    )
    contract_opening_balance_ore: int
    contract_net_ore: int
    contract_closing_balance_ore: int
    contract_entries: int


class StatementSummaryOut(BaseModel):
    """One period's settlement: what was paid, reversed and disputed, and the balances and cap against it."""

    contract_id: str
    contract_name: str
    commissioner_municipality: str
    commissioner_name: str
    funder: str | None
    funder_name: str
    provider_id: str | None = Field(description="the provider's statement; null: the whole contract's")
    period: str
    period_kind: Literal["month", "quarter"]
    from_: str = Field(alias="from")
    to: str
    time_zone: str
    complete: bool = Field(description="false while the period runs: it can still gain entries")
    currency: str
    opening_balance_ore: int
    payments_ore: int
    payments: int
    reversals_ore: int
    reversals: int
    disputes_raised: int
    disputed_ore: int
    disputes_resolved: int
    net_ore: int
    closing_balance_ore: int
    cap_ore: int
    cap_used_ore: int
    cap_left_ore: int
    closed: ClosureOut | None


class StatementOut(StatementSummaryOut):
    entries: list[StatementLineOut]


class StatementsOut(BaseModel):
    contract_id: str
    provider_id: str | None
    period_kind: Literal["month", "quarter"]
    statements: list[StatementSummaryOut]


def _settlement_period(contract: Any, period: str) -> Period:
    parsed = parse_period(period)
    assert parsed is not None  # the path pattern admits only what parse_period reads
    if parsed.kind != period_kind(contract):
        raise Problem(
            422,
            "wrong-period-kind",
            f"This contract settles by {period_kind(contract)}.",
            errors=[
                {
                    "field": "period",
                    "in": "path",
                    "message": f"use a {period_kind(contract)}, e.g. 2026-Q1 or 2026-03",
                }
            ],
        )
    return parsed


async def _statement(
    request: Request, contract: Any, period: Period, provider_id: str | None, closed: dict[str, Any]
) -> dict[str, Any]:
    gw = gateway_state(request)
    contract_id = contract["contract_id"]
    entries = await contracts_read.ledger_between(gw.pool, contract_id, period.start, period.end)
    before = await contracts_read.ledger_net_before(gw.pool, contract_id, period.start)
    mine = [e for e in entries if provider_id in (None, e["provider_id"])]
    return statement(
        contract,
        period,
        mine,
        opening_ore=before.get(provider_id, 0) if provider_id else sum(before.values()),
        contract_opening_ore=sum(before.values()),
        contract_net_ore=sum(int(e["signed_amount_ore"]) for e in entries),
        provider_id=provider_id,
        today=gw.clock.today(),
        closed=closed.get(period.label),
    )


@router.get(
    "/contracts/{contract_id}/statements",
    response_model=StatementsOut,
    summary="Every statement period of a contract, with totals",
)
async def list_statements(
    request: Request, who: Authenticated, contract_id: ContractId, provider_id: ProviderFilter = None
) -> dict[str, Any]:
    contract = await visible_contract(request, who, contract_id)
    provider = _provider(who, contract, provider_id)
    gw = gateway_state(request)
    span = await contracts_read.ledger_span(gw.pool, contract_id)
    periods = periods_between(span[0], gw.clock.now(), period_kind(contract)) if span else []
    closed = await contracts_read.closed_periods(gw.pool, contract_id)
    out = []
    for period in reversed(periods):
        full = await _statement(request, contract, period, provider, closed)
        out.append({k: v for k, v in full.items() if k != "entries"})
    return {
        "contract_id": contract_id,
        "provider_id": provider,
        "period_kind": period_kind(contract),
        "statements": out,
    }


@router.get(
    "/contracts/{contract_id}/statements/{period}",
    response_model=StatementOut,
    summary="One period's settlement statement: JSON, CSV (format=csv) or a printable page (format=html)",
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            }
        }
    },
)
async def one_statement(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    period: PeriodText,
    provider_id: ProviderFilter = None,
    format: Format = "json",
) -> Any:
    contract = await visible_contract(request, who, contract_id)
    parsed = _settlement_period(contract, period)
    closed = await contracts_read.closed_periods(gateway_state(request).pool, contract_id)
    body = await _statement(request, contract, parsed, _provider(who, contract, provider_id), closed)
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for line in body["entries"]:
            writer.writerow(
                {**line, "period": body["period"], "evidence_event_ids": " ".join(line["evidence_event_ids"])}
            )
        name = f"utfall-{contract_id}-{body['period']}{'-' + body['provider_id'] if body['provider_id'] else ''}.csv"
        return Response(
            buffer.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if format == "html":
        return html_page(templates.get_template("statement.html").render(s=body), private=True)
    return body


@router.get(
    "/contracts/{contract_id}/statements/{period}/invoice.xml",
    summary="One provider's statement as a Peppol BIS Billing 3.0 e-invoice (an Invoice, or a CreditNote when "
    "the period's net is negative)",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {"schema": {"type": "string"}}}},
        **problem_responses(409),
    },
)
async def statement_einvoice(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    period: PeriodText,
    provider_id: ProviderFilter = None,
) -> Response:
    """The provider is the seller and the contract's commissioner the buyer (`invoicing` in the contract);
    lines per milestone and unit price, reversals as lines of their own; VAT exempt (category E). Only a period
    that has ended is invoiced, and once the commissioner has closed it the document never changes."""
    contract = await visible_contract(request, who, contract_id)
    parsed = _settlement_period(contract, period)
    provider = _provider(who, contract, provider_id)
    if provider is None:
        raise Problem(
            422,
            "provider-required",
            "An e-invoice is one provider's: name it with provider_id.",
            errors=[{"field": "provider_id", "in": "query", "message": "a provider of the contract"}],
        )
    invoicing = dict(contract["definition"]).get("invoicing")
    if not invoicing:
        raise Problem(
            409, "no-invoice-recipient", "The contract names no buyer for e-invoices (`invoicing`)."
        )
    closed = await contracts_read.closed_periods(gateway_state(request).pool, contract_id)
    body = await _statement(request, contract, parsed, provider, closed)
    if not body["complete"]:
        raise Problem(409, "period-running", f"{body['period']} has not ended: it can still gain entries.")
    registered = request.app.state.providers.rows.get(provider)
    if registered is None:
        raise Problem(
            409, "provider-unknown", "The provider is not in the registry: its details are unknown."
        )
    try:
        document = einvoice(
            body,
            seller=Party(registered.display_name, registered.organisation_number),
            buyer=Party(
                invoicing["buyer_name"],
                invoicing["buyer_organisation_number"],
                invoicing.get("buyer_peppol_id"),
            ),
            buyer_reference=invoicing["buyer_reference"],
            payment_terms_days=int(invoicing.get("payment_terms_days", 30)),
        )
    except NothingToInvoice as nothing:
        raise Problem(404, "nothing-to-invoice", str(nothing)) from None
    return Response(
        document,
        media_type="application/xml",
        headers={
            "Content-Disposition": f'attachment; filename="{document_id(body)}.xml"',
            "Cache-Control": "private, no-store",
        },
    )
