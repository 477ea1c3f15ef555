"""People in the tests: the real Keycloak of the local stack, signing in through the code flow over plain HTTP."""

from __future__ import annotations

import html
import re
import urllib.parse
from typing import Any

import httpx

from utfall_platform.local.keycloak import CLIENT_ID, DEMO_PASSWORD, LocalKeycloak


async def sign_in(http: httpx.AsyncClient, username: str, *, next_path: str = "/v1/me") -> httpx.Response:
    """The authorization code flow as a browser walks it: the gateway sends us to Keycloak's login form, we fill
    it in, Keycloak sends us back with a code, the gateway sets its session cookie and sends us on."""
    started = await http.get("/signin", params={"next": next_path})
    assert started.status_code == 303, started.text
    login = await http.get(started.headers["location"])
    assert login.status_code == 200, (
        login.status_code,
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", login.text[login.text.find("<body") :]))[:1500],
    )
    action = re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', login.text) or re.search(
        r'action="([^"]+login-actions/authenticate[^"]*)"', login.text
    )
    assert action, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", login.text[login.text.find("<body") :]))[:1500]
    # Keycloak marks its cookies Secure even on http://127.0.0.1, which browsers treat as secure and httpx does not
    keycloak_cookies = "; ".join(f"{c.name}={c.value}" for c in login.cookies.jar)
    posted = await http.post(
        html.unescape(action.group(1)),
        data={"username": username, "password": DEMO_PASSWORD, "credentialId": ""},
        headers={"cookie": keycloak_cookies},
    )
    assert posted.status_code == 302, (posted.status_code, _text(posted.text))
    callback = await http.get(posted.headers["location"])
    return callback


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page[page.find("<body") :]))[:1500]


def password_token(
    keycloak: LocalKeycloak, username: str, *, client_id: str = CLIENT_ID, realm_issuer: str | None = None
) -> dict[str, Any]:
    """Tokens by the resource owner password grant (enabled on the local realm's client for tests and scripts)."""
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": DEMO_PASSWORD,
        "scope": "openid",
    }
    if client_id == CLIENT_ID:
        form["client_secret"] = keycloak.client_secret
    issuer = realm_issuer or keycloak.issuer
    answer = httpx.post(f"{issuer}/protocol/openid-connect/token", data=form, timeout=30)
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
