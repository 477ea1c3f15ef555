"""The public comparison page at `/`: server-rendered HTML with an SVG chart, no key, no script needed."""

from __future__ import annotations

import math
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
from .messages import labels as page_labels
from .rendering import html_page, templates

router = APIRouter(include_in_schema=False)

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
        elif p["status"] == "ok" and p.get("result") == "preliminary":
            item["preliminary"] = p["windows_closed_share"]
        rows.append(item)
    return rows


FUNNEL_WIDTH, FUNNEL_HEIGHT, FUNNEL_MARGIN = 640, 360, 48


def funnel_plot(funnel: dict[str, Any] | None, providers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Coordinates for the funnel SVG: x the number of cases (square-root scale, so small providers are not
    crowded into the corner), y the rate from 0 to 100 %."""
    if funnel is None:
        return None
    points = [p for p in providers if p.get("funnel")]
    top = int(max([c["n"] for c in funnel["curve"]] + [1]))
    plot_w, plot_h = FUNNEL_WIDTH - 2 * FUNNEL_MARGIN, FUNNEL_HEIGHT - 2 * FUNNEL_MARGIN

    def x(n: float) -> float:
        return round(FUNNEL_MARGIN + plot_w * math.sqrt(n / top), 1)

    def y(rate: float) -> float:
        return round(FUNNEL_MARGIN + plot_h * (1 - rate), 1)

    def line(key: str) -> str:
        return " ".join(f"{x(c['n'])},{y(c[key])}" for c in funnel["curve"])

    labels = [p["funnel"]["label"] for p in points]
    return {
        "counts": {label: labels.count(label) for label in ("higher", "lower", "no_different")},
        "width": FUNNEL_WIDTH,
        "height": FUNNEL_HEIGHT,
        "left": FUNNEL_MARGIN,
        "right": FUNNEL_WIDTH - FUNNEL_MARGIN,
        "top": FUNNEL_MARGIN,
        "bottom": FUNNEL_HEIGHT - FUNNEL_MARGIN,
        "target_y": y(funnel["target"]),
        "target": funnel["target"],
        "max_n": top,
        "lines": {key: line(key) for key in ("low_95", "high_95", "low_998", "high_998")},
        "points": [
            {
                "x": x(p["funnel"]["n"]),
                "y": y(p["funnel"]["rate"]),
                "label": p["funnel"]["label"],
                "provider_id": p["provider_id"],
                "display_name": p.get("display_name", p["provider_id"]),
                "rate": p["funnel"]["rate"],
                "n": p["funnel"]["n"],
            }
            for p in points
        ],
    }


TREND_WIDTH, TREND_HEIGHT, TREND_MARGIN = 640, 200, 40


def trend(national: dict[str, Any], by_provider: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The measure by discharge year: the national rate as a line (final years only; a preliminary year is an
    open marker at the axis, with no value), and a table of every provider's rate per year."""
    years = sorted({t["discharge_year"] for t in national["totals"]})
    totals = {t["discharge_year"]: t for t in national["totals"] if t["source"] == "events"}
    cells: dict[str, dict[int, dict[str, Any]]] = {}
    for r in by_provider["rows"]:
        if r["source"] == "events":
            cells.setdefault(r["provider_id"], {})[r["discharge_year"]] = r
    span = max(1, len(years) - 1)

    def x(i: int) -> float:
        return round(TREND_MARGIN + (TREND_WIDTH - 2 * TREND_MARGIN) * i / span, 1)

    def y(rate: float) -> float:
        return round(TREND_MARGIN / 2 + (TREND_HEIGHT - TREND_MARGIN) * (1 - rate), 1)

    points = []
    for i, year in enumerate(years):
        total = totals.get(year)
        rate = total["observed_rate"] if total and total["status"] == "ok" else None
        points.append(
            {
                "year": year,
                "x": x(i),
                "y": y(rate) if rate is not None else TREND_HEIGHT - TREND_MARGIN / 2,
                "rate": rate,
                "result": total["result"] if total else None,
                "share": total["windows_closed_share"] if total else None,
            }
        )
    final = [p for p in points if p["rate"] is not None]
    return {
        "width": TREND_WIDTH,
        "height": TREND_HEIGHT,
        "points": points,
        "line": " ".join(f"{p['x']},{p['y']}" for p in final),
        "years": years,
        "rows": [
            {
                "provider_id": pid,
                "display_name": names.get(pid, pid),
                "cells": [by_year.get(yr) for yr in years],
            }
            for pid, by_year in sorted(cells.items())
        ],
    }


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
