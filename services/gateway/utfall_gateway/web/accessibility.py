"""The accessibility statement (tillgänglighetsredogörelse), in Swedish and English, as Swedish public-sector
sites publish one under the law on accessibility of digital public services (DOS-lagen, EN 301 549)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from .messages import labels
from .rendering import html_page, templates

router = APIRouter(include_in_schema=False)

PREPARED = "2026-12-03"


@router.get("/accessibility", response_class=HTMLResponse)
async def accessibility(lang: str = Query("sv", pattern="^(sv|en)$")) -> HTMLResponse:
    html = templates.get_template("accessibility.html").render(
        t=_text(lang), lang=lang, other_lang="en" if lang == "sv" else "sv"
    )
    return html_page(html)


def _text(lang: str) -> dict[str, Any]:
    text = dict(labels("accessibility", lang))
    text["prepared"] = text["prepared"].format(prepared=PREPARED)
    return text
