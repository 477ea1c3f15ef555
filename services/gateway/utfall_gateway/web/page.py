"""The public comparison page at `/`: server-rendered HTML with an SVG chart, no key, no script needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from utfall_events.catalogue import is_register_fact_id
from utfall_platform.problems import Problem

from ..domain.public import latest_final_year
from ..providers import display_name, with_display_names
from ..readmodel import results as results_read
from ..release_store import ReleaseStore
from ..state import gateway_state
from .charts import CHART_WIDTH, LABEL_WIDTH, ROW_HEIGHT, chart_rows, funnel_plot, trend
from .messages import labels as page_labels
from .rendering import html_page, templates

router = APIRouter(include_in_schema=False)


def _provider_ids(per_provider: dict[str, Any]) -> set[str]:
    return {r["provider_id"] for r in per_provider["rows"]}


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request,
    measure: str = Query("planned_discharge", max_length=64),
    year_text: str | None = Query(None, alias="year", pattern=r"^(|20\d\d)$"),
    lang: str = Query("sv", pattern="^(sv|en)$"),
    source: str = Query("all", pattern="^(all|events|self_reported)$"),
    release_text: str | None = Query(None, alias="release", pattern=r"^[1-9]\d{0,5}$"),
) -> HTMLResponse:
    """`year` absent (or not in the release): the latest final discharge year. `release` absent: the latest
    release; a number: that release. The page shows releases only: nobody without a key sees a figure that is
    not in one."""
    year = int(year_text) if year_text else None
    gw = gateway_state(request)
    catalogue = await results_read.current_measure_titles(gw.pool)
    ids = [r["id"] for r in catalogue]
    if measure not in ids and ids:
        measure = ids[0]
    store: ReleaseStore = request.app.state.releases
    latest = store.latest()
    release = store.manifest(int(release_text)) if release_text else latest
    if release_text and release is None:
        raise Problem(404, "not-found", f"No release {release_text}.")
    released = store.measure(release.release, measure) if release is not None else None
    data: dict[str, Any] = {"providers": [], "total": None}
    trends = None
    years: list[int] = []
    national: dict[str, Any] = {"totals": []}
    per_provider: dict[str, Any] = {"rows": []}
    if released is not None:
        # the release's own figures: frozen, and suppressed across all of its tables together
        views = released.views
        national, per_provider = views["national"], views["per_provider"]
        years = sorted((int(k) for k in views["comparisons"]), reverse=True)
        if year is None or str(year) not in views["comparisons"]:
            year = latest_final_year(released)
        shown = views["comparisons"].get(str(year)) if year is not None else None
        if shown is not None:
            data = with_display_names(shown, request.app.state.providers)
    if released is not None:
        names = {p["provider_id"]: p.get("display_name", p["provider_id"]) for p in data["providers"]}
        names.update(
            {pid: display_name(request.app.state.providers, pid) for pid in _provider_ids(per_provider)}
        )
        trends = trend(national, per_provider, names)
    providers = [p for p in data["providers"] if source == "all" or p.get("source", "events") == source]
    labels = {k: v.format(n=gw.min_cell, margin=gw.margin) for k, v in page_labels("index", lang).items()}
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
        funnel=funnel_plot(data.get("funnel"), providers),
        trend=trends,
        national_x=(
            LABEL_WIDTH + data["total"]["observed_rate"] * (CHART_WIDTH - LABEL_WIDTH - 20)
            if data["total"] and data["total"].get("observed_rate") is not None
            else None
        ),
        source=source,
        release=release.model_dump(mode="json") if release is not None else None,
        released=released is not None,
        release_param=release_text,
        latest_release=latest.release if latest else None,
        chart_width=CHART_WIDTH,
        label_width=LABEL_WIDTH,
        chart_height=40 + max(1, len(providers)) * ROW_HEIGHT,
        title_key="title_sv" if lang == "sv" else "title_en",
        measure_title=next(
            (m["title_sv" if lang == "sv" else "title_en"] for m in catalogue if m["id"] == measure), measure
        ),
        other_lang="en" if lang == "sv" else "sv",
        # a verified measure's counts are its excluded and unverified where others' are missing and pending
        verified=is_register_fact_id(measure),
    )
    return html_page(html)
