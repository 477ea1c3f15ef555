"""The pages' one place for rendering: the Jinja environment over `web/templates/`, the security headers every
page is served with, and the HTML answer that carries them."""

from __future__ import annotations

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

templates = Environment(
    loader=PackageLoader("utfall_gateway.web", "templates"), autoescape=select_autoescape(["html"])
)

# No script, no frames, no third-party anything: a page is its HTML, its stylesheet and inline SVG.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def html_page(body: str, status: int = 200, *, private: bool = False) -> HTMLResponse:
    """A rendered page with the security headers; `private`: exact data for one reader, never cached."""
    headers = {**SECURITY_HEADERS, **({"Cache-Control": "no-store"} if private else {})}
    return HTMLResponse(body, status_code=status, headers=headers)
