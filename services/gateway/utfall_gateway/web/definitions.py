"""One readable page per measure, in Swedish and English, generated from the versioned catalogue: who is
counted, what counts as achieved, how missing follow-ups count, the window, when a result is final, and every
version of the definition."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from utfall_platform.problems import Problem

from ..results_service import catalogue
from ..state import gateway_state
from .messages import labels
from .rendering import html_page, templates

router = APIRouter(include_in_schema=False)


# What the rule kind decides, in words: the numerator and what makes an outcome not achieved.
def describe(versions: list[dict[str, Any]], lang: str, min_cell: int, margin: int) -> dict[str, Any]:
    """Everything the page says about one measure, from its catalogue rows (every version)."""
    ordered = sorted(versions, key=lambda r: r["version"])
    current = next((r for r in reversed(ordered) if r["is_current"]), ordered[-1])
    text = labels("definitions", lang)
    months = current["window_months"]
    return {
        "id": current["id"],
        "lang": lang,
        "other_lang": "en" if lang == "sv" else "sv",
        "title": current[f"title_{lang}"],
        "version": current["version"],
        "definition": current[f"definition_{lang}"],
        "rule": labels("rules", lang).get(current["kind"], current["kind"]),
        "window": text["window_none"]
        if months is None
        else text["window_text"].format(months=months, grace=current["grace_days"]),
        "fields": list(current["source_fields"]),
        "protection": text["protection_text"].format(n=min_cell, margin=margin),
        "versions": [
            {
                "version": r["version"],
                "current": r["is_current"],
                "title": r[f"title_{lang}"],
                "definition": r[f"definition_{lang}"],
                "window_months": r["window_months"],
            }
            for r in reversed(ordered)
        ],
        "text": text,
    }


@router.get("/measures/{measure_id}", response_class=HTMLResponse)
async def measure_page(
    request: Request,
    measure_id: str = Path(max_length=64),
    lang: str = Query("sv", pattern="^(sv|en)$"),
) -> HTMLResponse:
    gw = gateway_state(request)
    versions = [r for r in await catalogue(gw) if r["id"] == measure_id]
    if not versions:
        raise Problem(404, "not-found", "No measure with this id.")
    html = templates.get_template("measure.html").render(m=describe(versions, lang, gw.min_cell, gw.margin))
    return html_page(html)
