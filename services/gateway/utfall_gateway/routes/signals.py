"""Signals of data errors and gaming per provider, for operators and a contract's assessor."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from utfall_platform.problems import problem_responses

from ..auth import Principal, require_roles
from ..domain.policy import SIGNAL_READERS, watches_every_provider
from ..domain.signals import (
    DEFINITIONS,
    Share,
    SignalDefinition,
    SignalValue,
    history_signal,
    median_signal,
    pooled,
    reversed_for_outcome,
    share_signal,
)
from ..providers import display_name
from ..readmodel import contracts as contracts_read
from ..readmodel import signals as signals_read
from ..state import gateway_state
from ..web.messages import labels
from ..web.rendering import html_page, templates

router = APIRouter(prefix="/v1", tags=["signals"], responses=problem_responses(401, 403, 422))

# Signals are about providers' records, not about people: operators see every provider, an assessor the
# providers of the contracts it assesses.
Watcher = Annotated[Principal, Depends(require_roles(*SIGNAL_READERS))]


class ProviderSignals(BaseModel):
    provider_id: str
    signals: list[SignalValue]


class SignalsOut(BaseModel):
    definitions: list[SignalDefinition]
    providers: list[ProviderSignals]


async def _scope(request: Request, who: Principal) -> set[str] | None:
    if watches_every_provider(who):
        return None
    pool = gateway_state(request).pool
    providers: set[str] = set()
    for contract_id in who.contract_ids:
        row = await contracts_read.contract(pool, contract_id)
        if row is not None:
            providers |= set(row["provider_ids"])
    return providers


async def provider_signals(
    pool: Any, scope: set[str] | None, provider_id: str | None = None
) -> list[ProviderSignals]:
    """Every signal of each provider in `scope` (None: every provider), beside the national reference."""
    events: dict[str, Share] = defaultdict(lambda: Share(0, 0))
    for r in await signals_read.events_by_type(pool):
        s = events[r["provider_id"]]
        events[r["provider_id"]] = Share(
            s.hits + (r["n"] if r["retraction"] else 0), s.n + (0 if r["retraction"] else r["n"])
        )
    lags: dict[str, dict[int, int]] = defaultdict(dict)
    for r in await signals_read.reporting_lag(pool):
        if r["lag_days"] is not None:
            lags[r["provider_id"]][r["lag_days"]] = lags[r["provider_id"]].get(r["lag_days"], 0) + r["events"]
    missing = {
        r["provider_id"]: Share(r["missing"], r["closed"]) for r in await signals_read.followups_missing(pool)
    }
    changed: dict[str, Share] = defaultdict(lambda: Share(0, 0))
    for r in await signals_read.payments_and_reversals(pool):
        s = changed[r["provider_id"]]
        if r["kind"] == "payment.triggered":
            changed[r["provider_id"]] = Share(s.hits, s.n + r["n"])
        elif reversed_for_outcome(r["reason"]):
            changed[r["provider_id"]] = Share(s.hits + r["n"], s.n)
    differ = {
        r["provider_id"]: Share(r["differ"], r["compared"])
        for r in await signals_read.register_disagreements(pool)
    }
    planned = _by_year(await signals_read.discharge_reasons(pool), "planned", "discharges")
    near_deadline = _by_year(await signals_read.followup_timing(pool), "near_deadline", "followups")
    national_lag: dict[int, int] = defaultdict(int)
    for per_provider in lags.values():
        for days, n in per_provider.items():
            national_lag[days] += n
    national = {
        "retractions_per_100_events": pooled(events.values()),
        "followups_missing_share": pooled(missing.values()),
        "changed_after_payment_share": pooled(changed.values()),
        "register_disagreement_share": pooled(differ.values()),
    }
    national_planned, national_near = _national_by_year(planned), _national_by_year(near_deadline)
    known = set(events) | set(lags) | set(missing) | set(changed) | set(differ) | set(planned)
    chosen = sorted(p for p in known if (scope is None or p in scope) and provider_id in (None, p))
    none = Share(0, 0)
    return [
        ProviderSignals(
            provider_id=p,
            signals=[
                share_signal(
                    "retractions_per_100_events",
                    events.get(p, none),
                    national["retractions_per_100_events"],
                ),
                median_signal("reporting_lag_days", lags.get(p, {}), national_lag),
                share_signal(
                    "followups_missing_share", missing.get(p, none), national["followups_missing_share"]
                ),
                share_signal(
                    "changed_after_payment_share",
                    changed.get(p, none),
                    national["changed_after_payment_share"],
                ),
                share_signal(
                    "register_disagreement_share",
                    differ.get(p, none),
                    national["register_disagreement_share"],
                ),
                history_signal("planned_discharges_share", planned.get(p, {}), national_planned),
                history_signal("followups_near_deadline_share", near_deadline.get(p, {}), national_near),
            ],
        )
        for p in chosen
    ]


def _by_year(rows: list[Any], hits: str, n: str) -> dict[str, dict[int, Share]]:
    out: dict[str, dict[int, Share]] = defaultdict(dict)
    for r in rows:
        out[r["provider_id"]][int(r["discharge_year"])] = Share(int(r[hits]), int(r[n]))
    return out


def _national_by_year(by_provider: dict[str, dict[int, Share]]) -> dict[int, Share]:
    years: dict[int, list[Share]] = defaultdict(list)
    for per_year in by_provider.values():
        for year, share in per_year.items():
            years[year].append(share)
    return {year: pooled(shares) for year, shares in years.items()}


@router.get(
    "/signals",
    response_model=SignalsOut,
    summary="Signals of data errors and gaming per provider, each with its interval and the national reference "
    "(operators: every provider; an assessor: its contracts' providers); format=html is its page",
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def get_signals(
    request: Request,
    who: Watcher,
    provider_id: Annotated[str | None, Query(max_length=64, description="one provider")] = None,
    format: Annotated[Literal["json", "html"], Query()] = "json",
    lang: Annotated[Literal["sv", "en"], Query()] = "sv",
) -> SignalsOut | Response:
    scope = await _scope(request, who)
    answer = SignalsOut(
        definitions=list(DEFINITIONS),
        providers=await provider_signals(gateway_state(request).pool, scope, provider_id),
    )
    if format == "json":
        return answer
    registry = request.app.state.providers
    page = templates.get_template("signals.html").render(
        s=answer,
        t=labels("signals", lang),
        lang=lang,
        other_lang="en" if lang == "sv" else "sv",
        query=f"&provider_id={quote(provider_id)}" if provider_id else "",
        names={p.provider_id: display_name(registry, p.provider_id) for p in answer.providers},
    )
    return html_page(page, private=True)
