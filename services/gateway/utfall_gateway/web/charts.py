"""The public page's charts as geometry for its SVG templates: a bar per provider with its interval, the funnel
plot and the trend by discharge year (pure functions of the release's views)."""

from __future__ import annotations

import math
from typing import Any

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
