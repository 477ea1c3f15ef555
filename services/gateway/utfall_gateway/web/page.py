"""The public comparison page at `/`: server-rendered HTML with an SVG chart, no key, no script needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from .. import readmodel
from ..auth import PUBLIC
from ..providers import with_display_names
from ..results import comparison

router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=PackageLoader("utfall_gateway.web", "templates"), autoescape=select_autoescape(["html"])
)

LABELS = {
    "sv": {
        "title": "Öppna jämförelser: utfall av placeringar",
        "measure": "Mått",
        "year": "År",
        "all_years": "Alla år",
        "show": "Visa",
        "provider": "Utförare",
        "rate": "Andel uppnått",
        "interval": "95 % konfidensintervall",
        "achieved": "Uppnått",
        "not_achieved": "Ej uppnått",
        "missing": "Saknas",
        "pending": "Väntande",
        "itt": "Andel (ITT)",
        "oe": "O/E (riskjusterat)",
        "suppressed": "Undertryckt (skyddar enskilda)",
        "definition": "Definition av måttet",
        "source": "Källa",
        "events": "händelser",
        "self_reported": "självrapporterat",
        "all": "Alla utförare",
        "none": "Inga avslutade placeringar ännu.",
        "language": "Language: English",
        "data_errors": "Datafel",
        "source_filter": "Källa",
        "both": "Båda",
        "about": "Andelar visas med 95 % Wilson-intervall. Celler med färre än {n} avslutade "
        "placeringar undertrycks, liksom celler som annars kunde räknas fram ur totalen.",
    },
    "en": {
        "title": "Open comparisons: outcomes of out-of-home care",
        "measure": "Measure",
        "year": "Year",
        "all_years": "All years",
        "show": "Show",
        "provider": "Provider",
        "rate": "Share achieved",
        "interval": "95% confidence interval",
        "achieved": "Achieved",
        "not_achieved": "Not achieved",
        "missing": "Missing",
        "pending": "Pending",
        "itt": "Rate (ITT)",
        "oe": "O/E (risk-adjusted)",
        "suppressed": "Suppressed (protects individuals)",
        "definition": "Definition of the measure",
        "source": "Source",
        "events": "events",
        "self_reported": "self-reported",
        "all": "All providers",
        "none": "No ended placements yet.",
        "language": "Språk: svenska",
        "data_errors": "Data errors",
        "source_filter": "Source",
        "both": "Both",
        "about": "Rates are shown with 95% Wilson intervals. Cells with fewer than {n} closed placements are "
        "suppressed, as are cells that could otherwise be derived from the total.",
    },
}

CHART_WIDTH = 640
LABEL_WIDTH = 200
ROW_HEIGHT = 28


def chart_rows(providers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    span = CHART_WIDTH - LABEL_WIDTH - 20
    rows = []
    for index, p in enumerate(providers):
        y = 30 + index * ROW_HEIGHT
        item: dict[str, Any] = {
            "y": y,
            "provider_id": p["provider_id"],
            "display_name": p.get("display_name", p["provider_id"]),
            "source": p.get("source", "events"),
            "status": p["status"],
        }
        if p["status"] == "ok" and p["observed_rate"] is not None:
            item["x"] = LABEL_WIDTH + p["observed_rate"] * span
            item["x_low"] = LABEL_WIDTH + (p["ci_low"] or 0) * span
            item["x_high"] = LABEL_WIDTH + (p["ci_high"] or 0) * span
            item["rate"] = p["observed_rate"]
        rows.append(item)
    return rows


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request,
    measure: str = Query("planned_discharge", max_length=64),
    year: int | None = Query(None, ge=2000, le=2100),
    lang: str = Query("sv", pattern="^(sv|en)$"),
    source: str = Query("all", pattern="^(all|events|self_reported)$"),
) -> HTMLResponse:
    gw = request.app.state.gateway
    catalogue = await readmodel.current_measure_titles(gw.pool)
    ids = [r["id"] for r in catalogue]
    if measure not in ids and ids:
        measure = ids[0]
    years = await readmodel.discharge_years(gw.pool)
    data: dict[str, Any] = {"providers": [], "total": None}
    if measure in ids:
        data = await gw.cache.get(
            ("page", measure, year),
            lambda: comparison(
                gw.pool, measure, year=year, filters={}, principal=PUBLIC, min_cell=gw.settings.min_cell
            ),
        )
    data = with_display_names(data, request.app.state.providers)
    providers = [p for p in data["providers"] if source == "all" or p.get("source", "events") == source]
    labels = {k: v.format(n=gw.settings.min_cell) for k, v in LABELS[lang].items()}
    html = templates.get_template("index.html").render(
        labels=labels,
        lang=lang,
        measures=catalogue,
        measure=measure,
        years=years,
        year=year,
        providers=providers,
        total=data["total"],
        rows=chart_rows(providers),
        source=source,
        chart_width=CHART_WIDTH,
        label_width=LABEL_WIDTH,
        chart_height=40 + max(1, len(providers)) * ROW_HEIGHT,
        title_key="title_sv" if lang == "sv" else "title_en",
        other_lang="en" if lang == "sv" else "sv",
    )
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
