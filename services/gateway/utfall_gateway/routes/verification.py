"""Register verification: how far each provider's reported outcomes agree with the registers."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from utfall_events.catalogue import VERIFIABLE_MEASURE_IDS
from utfall_platform.problems import Problem, problem_responses

from ..auth import Principal, forbid_unless, require_roles
from ..domain.agreement import Agreement, Disagreement, VerifiedRow, agreement, by_provider, disagreements
from ..domain.policy import AGREEMENT_READERS, own_provider
from ..providers import display_name
from ..readmodel import registers as registers_read
from ..readmodel import results as results_read
from ..state import gateway_state
from ..web.agreement import chart
from ..web.messages import labels
from ..web.rendering import html_page, templates
from .measures import MeasureId, YearQ

router = APIRouter(prefix="/v1", tags=["verification"], responses=problem_responses(401, 403, 404, 422))

# Agreement is exact data about episodes: a provider sees its own, an operator every provider's.
Verifier = Annotated[Principal, Depends(require_roles(*AGREEMENT_READERS))]


class AgreementOut(BaseModel):
    measure_id: str
    year: int | None
    total: Agreement
    providers: list[Agreement]
    disagreements: list[Disagreement]


@router.get(
    "/measures/{measure_id}/agreement",
    response_model=AgreementOut,
    summary="Agreement of reported outcomes with the registers, per provider, with the disagreeing episodes "
    "(operators: every provider; a provider: its own); format=html is its page, with a chart",
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def get_agreement(
    request: Request,
    who: Verifier,
    measure_id: MeasureId,
    year: YearQ = None,
    provider_id: Annotated[str | None, Query(max_length=64, description="operators: one provider")] = None,
    format: Annotated[Literal["json", "html"], Query()] = "json",
    lang: Annotated[Literal["sv", "en"], Query()] = "sv",
) -> AgreementOut | Response:
    if measure_id not in VERIFIABLE_MEASURE_IDS:
        raise Problem(
            404,
            "not-verifiable",
            f"Registers verify these measures only: {', '.join(VERIFIABLE_MEASURE_IDS)}.",
        )
    mine = own_provider(who)
    if mine is not None:
        forbid_unless(provider_id in (None, mine), "A provider sees its own agreement only.")
        provider_id = mine
    state = gateway_state(request)
    rows = [
        VerifiedRow.of(r)
        for r in await registers_read.verified_facts(
            state.pool, measure_id, provider_id=provider_id, year=year
        )
    ]
    answer = AgreementOut(
        measure_id=measure_id,
        year=year,
        total=agreement(provider_id, rows),
        providers=by_provider(rows),
        disagreements=disagreements(rows),
    )
    if format == "json":
        return answer
    registry = request.app.state.providers
    names = {p.provider_id: display_name(registry, p.provider_id) for p in answer.providers if p.provider_id}
    titles = {r["id"]: r[f"title_{lang}"] for r in await results_read.current_measure_titles(state.pool)}
    query = "".join(f"&{k}={quote(str(v))}" for k, v in (("year", year), ("provider_id", provider_id)) if v)
    page = templates.get_template("agreement.html").render(
        a=answer,
        t=labels("agreement", lang),
        lang=lang,
        other_lang="en" if lang == "sv" else "sv",
        query=query,
        names=names,
        measure_title=titles.get(measure_id, measure_id),
        chart=chart(answer.providers, answer.total, names),
    )
    return html_page(page, private=True)
