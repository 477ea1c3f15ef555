"""Measure catalogue, results with filters and group_by, public comparisons, scorecards, length of stay."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from utfall_events.catalogue import is_register_fact_id, measure_of_fact
from utfall_platform.problems import Problem, problem_responses
from utfall_platform.registry import ProviderRegistry
from utfall_stats.quantiles import quantile

from ..answers import (
    ComparisonOut,
    Localised,
    MeasureOut,
    MeasuresOut,
    MeasureVersionsOut,
    ProviderOut,
    ProvidersOut,
    ResultsOut,
    ScorecardOut,
)
from ..auth import Anyone, Authenticated, Principal, principal
from ..domain.policy import sees_exactly, sees_provider_records
from ..domain.results import DIMENSIONS, ResultsQuery, in_measure_words
from ..pagination import cursor_int, encode_cursor
from ..providers import display_name, with_display_names
from ..readmodel import results as results_read
from ..results_service import catalogue, comparison, results_table, scope
from ..state import gateway_state

router = APIRouter(
    prefix="/v1",
    tags=["measures"],
    responses=problem_responses(400, 401, 403, 404, 422),
    dependencies=[Depends(principal)],
)

MeasureId = Annotated[str, Path(max_length=64, examples=["planned_discharge"])]
ProviderIdPath = Annotated[str, Path(max_length=64, examples=["hvb-eken"])]
Dim = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
YearQ = Annotated[int | None, Query(ge=2000, le=2100)]
ReleaseQ = Annotated[
    int | None,
    Query(
        ge=1,
        le=1_000_000,
        description="the release to answer from (default: the latest); figures outside your scope always come "
        "from a release",
    ),
]


def _measure_out(r: Mapping[str, Any]) -> MeasureOut:
    verified = is_register_fact_id(r["id"])
    return MeasureOut(
        id=r["id"],
        version=r["version"],
        title=Localised(sv=r["title_sv"], en=r["title_en"]),
        definition=Localised(sv=r["definition_sv"], en=r["definition_en"]),
        window_months=r["window_months"],
        grace_days=r["grace_days"],
        source_fields=list(r["source_fields"]),
        current=r["is_current"],
        rule=r["kind"],
        source="verified" if verified else "reported",
        verifies=measure_of_fact(r["id"]) if verified else None,
        final_when=(
            "at discharge: the outcome is known when the placement ends"
            if r["window_months"] is None
            else f"when every episode of the discharge period has passed {r['window_months']} months and "
            f"{r['grace_days'] or 0} days after its discharge; until then the period's result is preliminary, "
            "shown with the share of windows closed and without a rate"
        ),
    )


@router.get("/measures", response_model=MeasuresOut, summary="The measure catalogue (current versions)")
async def list_measures(request: Request) -> MeasuresOut:
    rows = await catalogue(gateway_state(request))
    return MeasuresOut(measures=[_measure_out(r) for r in rows if r["is_current"]])


@router.get(
    "/measures/{measure_id}",
    response_model=MeasureVersionsOut,
    summary="One measure's definition, with every version",
)
async def get_measure(request: Request, measure_id: MeasureId) -> MeasureVersionsOut:
    rows = [r for r in await catalogue(gateway_state(request)) if r["id"] == measure_id]
    if not rows:
        raise Problem(404, "not-found", "No measure with this id.")
    current = next((r for r in rows if r["is_current"]), rows[-1])
    return MeasureVersionsOut(**_measure_out(current).model_dump(), versions=[_measure_out(r) for r in rows])


async def _known_measure(request: Request, measure_id: str) -> None:
    rows = await catalogue(gateway_state(request))
    if not any(r["id"] == measure_id for r in rows):
        raise Problem(404, "not-found", "No measure with this id.")


def _filters(**values: str | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in values.items() if v is not None))


@router.get(
    "/measures/{measure_id}/results",
    response_model=ResultsOut,
    response_model_exclude_unset=True,
    summary="Results per discharge period, filtered and grouped",
)
async def results(
    request: Request,
    who: Anyone,
    measure_id: MeasureId,
    period: Literal["year", "quarter"] = "year",
    group_by: Annotated[
        str | None, Query(description="Comma-separated: " + ", ".join(DIMENSIONS), max_length=300)
    ] = None,
    year: YearQ = None,
    quarter: Annotated[int | None, Query(ge=1, le=4)] = None,
    provider_id: Dim = None,
    unit_id: Dim = None,
    municipality_code: Dim = None,
    county_code: Dim = None,
    target_group: Dim = None,
    care_type: Dim = None,
    legal_basis: Dim = None,
    sex: Dim = None,
    age_band: Dim = None,
    source: Annotated[
        Literal["all", "events", "self_reported"],
        Query(
            description="events (from individual care events), self_reported (aggregated submissions) or all"
        ),
    ] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    release: ReleaseQ = None,
) -> dict[str, Any]:
    """Within your scope (an operator's everything, a provider's own cells, a municipality's placements) the
    figures are exact and live; everything else comes from a release, which publishes by discharge year over
    one breakdown at a time (provider, sex, age band, target group). The public's questions that no release
    answers are refused with 403 `not-published`."""
    await _known_measure(request, measure_id)
    groups = tuple(g.strip() for g in group_by.split(",") if g.strip()) if group_by else ()
    unknown = [g for g in groups if g not in DIMENSIONS]
    if unknown or len(set(groups)) != len(groups):
        raise Problem(
            422,
            "invalid-parameters",
            "group_by takes distinct names among: " + ", ".join(DIMENSIONS),
            errors=[{"field": "group_by", "in": "query", "message": "unknown or repeated dimension"}],
        )
    q = ResultsQuery(
        measure_id,
        period,
        groups,
        _filters(
            provider_id=provider_id,
            unit_id=unit_id,
            municipality_code=municipality_code,
            county_code=county_code,
            target_group=target_group,
            care_type=care_type,
            legal_basis=legal_basis,
            sex=sex,
            age_band=age_band,
        ),
        year,
        quarter,
    )
    gw = gateway_state(request)
    table = await results_table(gw, q, source, who, release)
    offset = cursor_int(cursor, "offset")
    page = table["rows"][offset : offset + limit]
    next_offset = offset + limit
    return {
        "measure_id": measure_id,
        "period": period,
        "group_by": list(groups),
        "filters": dict(q.filters),
        "min_cell": gw.min_cell,
        "rows": in_measure_words(measure_id, page),
        "totals": in_measure_words(measure_id, table["totals"]),
        "release": table["release"],
        "next_cursor": encode_cursor({"offset": next_offset}) if next_offset < len(table["rows"]) else None,
    }


@router.get(
    "/comparisons/{measure_id}",
    response_model=ComparisonOut,
    response_model_exclude_unset=True,
    summary="Providers compared: suppressed, with intervals and risk adjustment (public)",
)
async def comparisons(
    request: Request,
    who: Anyone,
    measure_id: MeasureId,
    year: YearQ = None,
    target_group: Dim = None,
    care_type: Dim = None,
    legal_basis: Dim = None,
    municipality_code: Dim = None,
    county_code: Dim = None,
    release: ReleaseQ = None,
) -> dict[str, Any]:
    """The public's comparison is a release's: one discharge year (without `year`, the latest whose results
    are final), unfiltered; a key holder's is the same with its own rows exact and live; an operator's is
    live (without `year`, over every discharge year)."""
    await _known_measure(request, measure_id)
    filters = dict(
        _filters(
            target_group=target_group,
            care_type=care_type,
            legal_basis=legal_basis,
            municipality_code=municipality_code,
            county_code=county_code,
        )
    )
    result = await comparison(
        gateway_state(request), measure_id, year=year, filters=filters, principal=who, release=release
    )
    return with_display_names(in_measure_words(measure_id, result), request.app.state.providers)


@router.get(
    "/providers",
    response_model=ProvidersOut,
    summary="The registered, active providers with their display names (public)",
)
async def providers(request: Request) -> ProvidersOut:
    registry: ProviderRegistry = request.app.state.providers
    return ProvidersOut(
        providers=[
            ProviderOut(
                provider_id=p.provider_id,
                display_name=p.display_name,
                organisation_number=p.organisation_number,
                care_types=list(p.care_types),
            )
            for p in sorted(registry.rows.values(), key=lambda p: p.display_name)
            if p.active
        ]
    )


@router.get(
    "/providers/{provider_id}/scorecard",
    response_model=ScorecardOut,
    response_model_exclude_unset=True,
    summary="One provider's results on every measure",
)
async def scorecard(
    request: Request, who: Anyone, provider_id: ProviderIdPath, year: YearQ = None, release: ReleaseQ = None
) -> dict[str, Any]:
    """From a release, as the comparisons are; exact and live for the provider itself and operators."""
    gw = gateway_state(request)
    pool = gw.pool
    current = [r for r in await catalogue(gw) if r["is_current"]]
    measures = []
    for m in current:
        try:
            comp = await comparison(gw, m["id"], year=year, filters={}, principal=who, release=release)
        except Problem as absent:
            if absent.slug != "no-release":
                raise
            continue
        mine = next(
            (p for p in comp["providers"] if p["provider_id"] == provider_id and p["source"] == "events"),
            None,
        )
        reported = next(
            (
                p
                for p in comp["providers"]
                if p["provider_id"] == provider_id and p["source"] == "self_reported"
            ),
            None,
        )
        measures.append(
            {
                "measure": _measure_out(m),
                "year": comp.get("year"),
                "provider": in_measure_words(m["id"], mine),
                "self_reported": reported,
                "all_providers": in_measure_words(m["id"], comp["total"]),
            }
        )
    if all(m["provider"] is None and m["self_reported"] is None for m in measures):
        if not await results_read.provider_has_episodes(pool, provider_id):
            raise Problem(404, "not-found", "No data for this provider.")
    own = sees_provider_records(who, provider_id)
    errors = await results_read.data_errors(pool, provider_id) if own else None
    return {
        "provider_id": provider_id,
        "display_name": display_name(request.app.state.providers, provider_id),
        "year": year,
        "exact": own,
        "measures": measures,
        "data_errors": errors,
        "length_of_stay": (
            await _length_of_stay(pool, ("provider_id",), {"provider_id": provider_id}, year, who)
            if own
            else None
        ),
    }


async def _length_of_stay(
    pool: Any, groups: tuple[str, ...], filters: dict[str, str], year: int | None, who: Principal
) -> list[dict[str, Any]]:
    """Lengths of stay within the reader's scope only, exactly: releases do not publish them, so there is no
    public figure to show beside the reader's own."""
    out = []
    for r in await results_read.length_of_stay_days(pool, groups, filters, year):
        if not sees_exactly(who, {g: r[g] for g in groups}, filters):
            continue
        days = list(r["days"] or [])
        out.append(
            {
                **{g: r[g] for g in groups},
                "n": int(r["n"]),
                "q1": quantile(days, 0.25),
                "median": quantile(days, 0.5),
                "q3": quantile(days, 0.75),
                "status": "ok",
            }
        )
    return out


@router.get(
    "/length-of-stay",
    summary="Length of stay in days (median and quartiles) of ended episodes, within your scope (a key)",
)
async def length_of_stay(
    request: Request,
    who: Authenticated,
    group_by: Annotated[str | None, Query(max_length=300)] = None,
    year: YearQ = None,
    provider_id: Dim = None,
    municipality_code: Dim = None,
    target_group: Dim = None,
    care_type: Dim = None,
) -> dict[str, Any]:
    groups = tuple(g.strip() for g in group_by.split(",") if g.strip()) if group_by else ()
    if any(g not in DIMENSIONS for g in groups) or len(set(groups)) != len(groups):
        raise Problem(
            422, "invalid-parameters", "group_by takes distinct names among: " + ", ".join(DIMENSIONS)
        )
    gw = gateway_state(request)
    filters = dict(
        _filters(
            provider_id=provider_id,
            municipality_code=municipality_code,
            target_group=target_group,
            care_type=care_type,
        )
    )
    rows = await gw.cache.get(
        ("los", groups, tuple(sorted(filters.items())), year, scope(who)),
        lambda: _length_of_stay(gw.pool, groups, filters, year, who),
    )
    return {"group_by": list(groups), "filters": filters, "year": year, "rows": rows}
