"""The pages' one place for rendering: the Jinja environment over `web/templates/`, the security headers every
page is served with, and the HTML answer that carries them."""

from __future__ import annotations

from datetime import datetime

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from utfall_events.periods import SWEDEN

templates = Environment(
    loader=PackageLoader("utfall_gateway.web", "templates"), autoescape=select_autoescape(["html"])
)

MINUS = "\u2212"  # the minus sign, never a hyphen, before every negative amount
GROUP = "\u00a0"  # thousands are grouped by a no-break space, as Swedish writes amounts


def kronor(ore: int) -> str:
    """Öre as kronor the Swedish way: 16 900 000,00 and −1 250,50 (no-break spaces, a real minus)."""
    whole, cents = divmod(abs(int(ore)), 100)
    grouped = f"{whole:,}".replace(",", GROUP)
    return f"{MINUS if ore < 0 else ''}{grouped},{cents:02d}"


def swedish_time(iso: str) -> str:
    """A UTC instant as the wall clock in Sweden (the time periods are counted in): 2026-03-01 09:30."""
    return datetime.fromisoformat(iso).astimezone(SWEDEN).strftime("%Y-%m-%d %H:%M")


def swedish_instant(iso: str) -> str:
    """The same to the second, for records of who did what: 2026-03-01 09:30:12."""
    return datetime.fromisoformat(iso).astimezone(SWEDEN).strftime("%Y-%m-%d %H:%M:%S")


templates.filters["kronor"] = kronor
templates.filters["swedish_instant"] = swedish_instant
templates.filters["swedish_time"] = swedish_time

# No script, no frames, no third-party anything: a page is its HTML, its stylesheet and inline SVG.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def html_page(
    body: str, status: int = 200, *, private: bool = False, forms_to: str | None = None
) -> HTMLResponse:
    """A rendered page with the security headers; `private`: exact data for one reader, never cached;
    `forms_to`: another origin a form's answer may redirect to (the sign-out goes on to the identity provider)."""
    headers = {**SECURITY_HEADERS, **({"Cache-Control": "no-store"} if private else {})}
    if forms_to:
        headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
            "form-action 'self'", f"form-action 'self' {forms_to}"
        )
    return HTMLResponse(body, status_code=status, headers=headers)
