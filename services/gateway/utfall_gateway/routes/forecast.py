"""A contract's liability forecast (maximum, expected, planned against actual per period) as JSON or as the
contract's page (`format=html`). `forecast.py` computes it; the figures are read through `readmodel/contracts.py`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from utfall_events.periods import noon, period_of
from utfall_platform.problems import problem_responses

from ..auth import Authenticated, authorize_contract
from ..domain.forecast import OpenMilestone, Rate, forecast
from ..domain.indigo import ActualPayments, MilestoneResult, export
from ..readmodel import contracts as contracts_read
from ..state import gateway_state
from ..web.rendering import html_page, templates
from .contracts import ContractId, contract_out, visible_contract
from .statements import period_kind

router = APIRouter(prefix="/v1", tags=["contracts"], responses=problem_responses(400, 401, 403, 404, 422))


async def actual_payments(request: Request, contract: Any) -> list[ActualPayments]:
    """Net paid per period (the contract's), milestone and provider."""
    kind = period_kind(contract)
    grouped: dict[tuple[str, str, str], list[int]] = {}
    for row in await contracts_read.ledger_net_by_month(gateway_state(request).pool, contract["contract_id"]):
        key = (period_of(noon(row["month"]), kind).label, row["milestone_id"], row["provider_id"])
        totals = grouped.setdefault(key, [0, 0])
        totals[0] += int(row["net"])
        totals[1] += int(row["open_disputes"])
    return [ActualPayments(*key, net, disputes) for key, (net, disputes) in sorted(grouped.items())]


async def contract_forecast(
    request: Request, contract: Any, paid: list[ActualPayments] | None = None
) -> dict[str, Any]:
    """`paid`: the contract's actual payments when the caller has read them already."""
    pool = gateway_state(request).pool
    contract_id = contract["contract_id"]
    kind = period_kind(contract)
    items = [
        OpenMilestone(
            r["provider_id"],
            r["episode_id"],
            r["milestone_id"],
            r["measure_id"],
            int(r["price_ore"]),
            r["care_type"],
            r["target_group"],
            r["start_date"],
            r["end_date"],
        )
        for r in await contracts_read.open_milestones(pool, contract_id)
    ]
    measures = sorted({m["measure_id"] for m in dict(contract["definition"])["milestones"]})
    rates = {
        (r["measure_id"], r["care_type"], r["target_group"]): Rate(int(r["achieved"]), int(r["determined"]))
        for r in await contracts_read.outcome_rates(pool, measures)
    }
    actual: dict[str, int] = {}
    for row in paid if paid is not None else await actual_payments(request, contract):
        actual[row.period] = actual.get(row.period, 0) + row.net_ore
    return forecast(
        contract,
        items,
        await contracts_read.participant_paid(pool, contract_id),
        rates,
        await contracts_read.median_stays(pool),
        actual,
        period_kind=kind,
        today=gateway_state(request).clock.today(),
    )


@router.get(
    "/contracts/{contract_id}/forecast",
    summary="What the contract can still cost (maximum, expected) and planned against actual per period; "
    "format=html is the contract's page",
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def get_forecast(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> Any:
    contract = await visible_contract(request, who, contract_id)
    authorize_contract(who, contract, "forecast")
    body = await contract_forecast(request, contract)
    if format == "html":
        page = templates.get_template("contract.html").render(
            c=contract_out(contract).model_dump(mode="json"), f=body
        )
        return html_page(page, private=True)
    return body


@router.get(
    "/contracts/{contract_id}/indigo",
    summary="The contract in the shape of the INDIGO impact bond data standard (project): metrics, pricing, "
    "commitment, outcome payments Planned and Actual per period, results",
)
async def indigo_export(request: Request, who: Authenticated, contract_id: ContractId) -> dict[str, Any]:
    contract = await visible_contract(request, who, contract_id)
    authorize_contract(who, contract, "indigo")
    gw = gateway_state(request)
    results = [
        MilestoneResult(r["milestone_id"], int(r["engaged"]), int(r["achieved"]))
        for r in await contracts_read.milestone_results(gw.pool, contract_id)
    ]
    paid = await actual_payments(request, contract)
    return export(
        contract,
        await contract_forecast(request, contract, paid),
        paid,
        results,
        min_cell=gw.min_cell,
        today=gw.clock.today(),
    )
