"""People sign in as themselves through a real Keycloak, and every look at exact data is on record: the code flow
for each role over HTTP, scope from token claims, token refusals, revocation within 30 s, CSRF, the audit trail
(complete, hash-chained, verified, pruned in segments) and its durability when the gateway is SIGKILLed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from utfall_platform.db import connect
from utfall_platform.local.keycloak import LocalKeycloak
from utfall_platform.local.stack import LocalStack

from ..conftest import ARTIFACTS
from ..helpers import create_key, read_topic, register_provider, wait_until
from ..people import password_token, sign_in
from .test_gateway import form_token

pytestmark = pytest.mark.asyncio(loop_scope="session")
CONTRACT = "hvb-ungdom-stockholm"
REPO = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def people(world, tmp_path_factory) -> AsyncIterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The four services on this module's database, and a Keycloak whose realm sends people back to the gateway."""
    ARTIFACTS.mkdir(exist_ok=True)
    sink = (ARTIFACTS / f"{world.name}.log").open("w")
    stack = LocalStack(
        tmp_path_factory.mktemp("people-stack"),
        kafka=world.cluster,
        database_url=world.database_url,
        gateway_database_url=world.gateway_database_url,
        log_sink=sink,
        extra_env=world.env(),
    )
    gateway = stack.services["gateway"].url
    keycloak = LocalKeycloak(tmp_path_factory.mktemp("keycloak"), gateway_urls=(gateway,))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, keycloak.start)
    stack.extra_env.update(keycloak.gateway_env())
    stack.extra_env["UTFALL_OIDC_LEEWAY_SECONDS"] = "0"  # the expired-token case expires in seconds
    for name in ("ingest", "measures", "contracts", "gateway"):
        stack.start_service(name)
    await loop.run_in_executor(None, stack.wait_ready)
    operator = await create_key(world.kafka, "operator")
    await register_provider(world.kafka, "hvb-eken")  # vera's provider: ingest takes figures from it
    yield {"stack": stack, "keycloak": keycloak, "gateway": gateway, "operator": operator, "world": world}
    await loop.run_in_executor(None, stack.stop)
    await loop.run_in_executor(None, keycloak.stop)
    sink.close()


# What each demo person may and may not read: (path, expected status). Each is an answer with exact data, or a
# refusal; both belong in the trail.
SCOPES: dict[str, tuple[str, list[tuple[str, int]]]] = {
    "vera": (
        "provider",
        [
            (f"/v1/contracts/{CONTRACT}/statements", 200),
            ("/v1/events/provider/hvb-eken/no-such-event/status", 404),
            ("/v1/events/provider/hvb-bjorken/no-such-event/status", 403),
            ("/v1/signals", 403),
        ],
    ),
    "astrid": (
        "assessor",
        [
            (f"/v1/contracts/{CONTRACT}/participants", 200),
            ("/v1/contracts/rate-card-vastra-gotaland/participants", 403),
        ],
    ),
    "maja": (
        "municipality",
        [
            (f"/v1/contracts/{CONTRACT}/participants", 200),
            ("/v1/signals", 403),
        ],
    ),
    "filip": (
        "finance",
        [
            (f"/v1/contracts/{CONTRACT}/payments", 200),
            (f"/v1/contracts/{CONTRACT}/participants", 403),
            ("/v1/audit?format=html", 403),
        ],
    ),
    "olle": (
        "operator",
        [
            ("/v1/signals", 200),
            (f"/v1/contracts/{CONTRACT}/participants", 200),
            ("/v1/audit?format=html&lang=en", 200),  # the trail's page, signed in
        ],
    ),
}


async def _trail(http: httpx.AsyncClient, operator: str, **filters: str) -> list[dict[str, Any]]:
    answer = await http.get(
        "/v1/audit", params={**filters, "limit": 1000}, headers={"authorization": f"Bearer {operator}"}
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_each_role_signs_in_through_the_code_flow_sees_its_scope_and_is_on_record(people) -> None:  # type: ignore[no-untyped-def]
    for username, (role, reads) in SCOPES.items():
        async with httpx.AsyncClient(base_url=people["gateway"], timeout=30) as http:
            landed = await sign_in(http, username)
            assert landed.status_code == 303 and landed.headers["location"] == "/v1/me", landed.text
            cookie = landed.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=lax" in cookie and "utfall_session=" in cookie
            me = (await http.get("/v1/me")).json()
            assert me["role"] == role and me["actor"].startswith("person:") and me["name"], me
            for path, expected in reads:
                answer = await http.get(path)
                assert answer.status_code == expected, (username, path, answer.text[:300])
            # the same person with a bearer token from the IdP: the API, the same scope
            token = password_token(people["keycloak"], username)["access_token"]
            bearer = await http.get(reads[0][0], headers={"authorization": f"Bearer {token}"})
            assert bearer.status_code == reads[0][1], bearer.text[:300]
            if role == "operator":  # the trail's page lists the person's own reads under their name
                page = await http.get("/v1/audit", params={"format": "html", "actor": me["actor"]})
                assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
                assert f'data-actor="{me["actor"]}"' in page.text and me["name"] in page.text
            trail = await _trail(http, people["operator"], actor=me["actor"])
        paths = [(e["path"], e["outcome"]) for e in trail]
        for path, expected in reads:
            assert (path, expected) in paths, (username, path, paths)
        assert all(e["actor_name"] == me["name"] and e["role"] == role for e in trail)
        rows = {e["path"]: e["rows"] for e in trail if e["outcome"] == 200}
        assert all(isinstance(n, int) for p, n in rows.items() if p.startswith("/v1/contracts")), rows


async def test_uploads_comments_and_a_period_closing_record_the_person_who_did_them(people) -> None:  # type: ignore[no-untyped-def]
    from utfall_events.topics import AGGREGATES

    operator = {"authorization": f"Bearer {people['operator']}"}
    async with httpx.AsyncClient(base_url=people["gateway"], timeout=60) as http:
        landed = await sign_in(http, "vera", next_path="/provider?lang=en")
        assert landed.headers["location"] == "/provider?lang=en"
        page = await http.get("/provider", params={"lang": "en"})
        assert page.status_code == 200 and 'data-provider="hvb-eken"' in page.text
        assert "Signed in as Vera Lind" in page.text and 'action="/signout"' in page.text
        vera = (await http.get("/v1/me")).json()["actor"]
        token = form_token(page.text)
        sheet = (
            "provider_id,measure_id,measure_version,period,target_group,numerator,denominator,missing,method\n"
            "hvb-eken,no_replacement_6m,1,2023,behaviour,17,25,1,journalgenomgång\n"
        )
        sent = await http.post(
            "/provider/upload",
            params={"lang": "en"},
            files={"file": ("figures.csv", sheet.encode(), "text/csv")},
            data={"csrf_token": token},
        )
        assert sent.status_code == 200 and 'data-status="accepted"' in sent.text, sent.text[-2000:]
        note = "Two placements at Eken in 2023 are counted twice in our records."
        commented = await http.post("/provider/comments", data={"text": note, "csrf_token": token})
        assert commented.status_code == 303, commented.text
        comments = (await http.get("/v1/releases/comments", headers=operator)).json()
        ours = next(c for c in comments["comments"] if c["text"] == note)
        assert ours["key_id"] == vera and ours["person"]["name"] == "Vera Lind"
    figures = await read_topic(
        people["world"].kafka,
        AGGREGATES,
        predicate=lambda r: b"hvb-eken" in r.value and b"Vera Lind" in r.value,
        expect=1,
        timeout=30,
    )
    submission = json.loads(figures[0].value)
    assert submission["submitted_by"] == vera and submission["person"]["name"] == "Vera Lind"

    async with httpx.AsyncClient(base_url=people["gateway"], timeout=60) as http:
        await sign_in(http, "maja")
        me = (await http.get("/v1/me")).json()
        url = f"/v1/contracts/{CONTRACT}/statements/2025-Q1"
        closed = await http.post(f"{url}/close", headers={"x-csrf-token": me["csrf_token"]})
        assert closed.status_code == 201, closed.text
        statement = (await http.get(url)).json()
        assert statement["closed"]["closed_by_name"] == "Maja Ek"
        assert statement["closed"]["closed_by_key_id"] == me["actor"]
        trail = await _trail(http, people["operator"], actor=me["actor"], contract_id=CONTRACT)
        assert any(e["method"] == "POST" and e["period"] == "2025-Q1" and e["outcome"] == 201 for e in trail)


async def test_a_person_signs_in_through_keycloak_in_chromium_and_out_again(people, artifacts) -> None:  # type: ignore[no-untyped-def]
    """The code flow in a real browser: the provider's page sends vera to Keycloak's form and back, signed in;
    signing out ends the session here and at the IdP."""
    from playwright.async_api import async_playwright

    from .test_gateway import CHROMIUM_ARGS, _chromium

    chromium = _chromium()
    assert chromium, "Debian's chromium is needed (scripts/bootstrap.sh --system installs it)"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{people['gateway']}/provider?lang=en")
            await page.click("#signin-person")
            await page.wait_for_selector("#username")
            assert page.url.startswith(people["keycloak"].issuer)
            await page.fill("#username", "vera")
            await page.fill("#password", "demo")
            await page.click("#kc-login")
            await page.wait_for_selector("#person")
            assert page.url == f"{people['gateway']}/provider?lang=en"
            assert "Vera Lind" in await page.inner_text("#person")
            cookies = {c["name"]: c for c in await page.context.cookies(people["gateway"])}
            session = cookies["utfall_session"]
            assert session["httpOnly"] and session["sameSite"] == "Lax"
            await page.screenshot(path=str(artifacts / "provider-signed-in-person.png"), full_page=True)
            await page.click("#logout button")
            try:
                await page.wait_for_url(f"{people['gateway']}/", timeout=15_000)
            except Exception:
                await page.screenshot(path=str(artifacts / "signout.png"))
                raise AssertionError((page.url, (await page.inner_text("body"))[:1000])) from None
            await page.goto(f"{people['gateway']}/provider?lang=en")
            assert (
                await page.query_selector("#signin-person") is not None
            )  # signed out: the sign-in page again
        finally:
            await browser.close()


async def test_tokens_that_do_not_prove_a_person_are_refused_with_problem_details(people) -> None:  # type: ignore[no-untyped-def]
    keycloak: LocalKeycloak = people["keycloak"]
    good = password_token(keycloak, "olle")["access_token"]
    header, payload, signature = good.split(".")
    altered = (
        f"{header}.{payload}.{signature[:-6]}{'AAAAAA' if not signature.endswith('AAAAAA') else 'BBBBBB'}"
    )
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged_key = RSAKey.import_key(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), {"kid": "forged", "use": "sig"}
    )
    other_issuer = jwt.encode(
        {"alg": "RS256", "kid": "forged"}, {**claims, "iss": "https://idp.example"}, forged_key
    )
    forged_same_issuer = jwt.encode({"alg": "RS256", "kid": "forged"}, claims, forged_key)
    # a token Keycloak signed for another client of the realm: valid, but not for this API
    wrong_audience = password_token(keycloak, "olle", client_id="admin-cli")["access_token"]
    id_token = password_token(keycloak, "olle")["id_token"]
    # an expired one: the realm issues tokens for 2 s while we take one (the gateway allows no skew here)
    realm = keycloak.admin("GET", "/admin/realms/utfall")
    keycloak.admin("PUT", "/admin/realms/utfall", {"accessTokenLifespan": 2})
    try:
        expiring = password_token(keycloak, "olle")["access_token"]
    finally:
        keycloak.admin("PUT", "/admin/realms/utfall", {"accessTokenLifespan": realm["accessTokenLifespan"]})
    await asyncio.sleep(3.5)
    cases = {
        "an altered signature": (altered, "signature"),
        "another issuer": (other_issuer, ""),
        "a key the IdP never had": (forged_same_issuer, ""),
        "another audience": (wrong_audience, "aud"),
        "an ID token": (id_token, "ID token"),
        "an expired token": (expiring, "expired"),
    }
    async with httpx.AsyncClient(base_url=people["gateway"], timeout=30) as http:
        assert (await http.get("/v1/signals", headers={"authorization": f"Bearer {good}"})).status_code == 200
        for case, (token, says) in cases.items():
            answer = await http.get("/v1/signals", headers={"authorization": f"Bearer {token}"})
            assert answer.status_code == 401, (case, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json"), case
            body = answer.json()
            assert body["status"] == 401 and says in body["detail"], (case, body)
            assert token not in answer.text
        # what a caller puts in a path or query is recorded as sent, even what PostgreSQL text cannot hold
        odd = await http.get(
            "/v1/signals?contract_id=%00x&provider_id=%ED%A0%80", headers={"authorization": f"Bearer {good}"}
        )
        assert odd.status_code in (200, 422), odd.text
        operator = {"authorization": f"Bearer {people['operator']}"}
        for bad in ("until=0.5", "since=1700000000", "contract_id=%00x", "until=2026-12-05T10:00:00"):
            answer = await http.get(f"/v1/audit?{bad}", headers=operator)
            assert answer.status_code == 422, (bad, answer.text)
        refused = await _trail(http, people["operator"], actor="unauthenticated")
        assert sum(1 for e in refused if e["outcome"] == 401 and e["route"] == "/v1/signals") >= len(cases)


async def test_a_disabled_person_is_refused_within_30_seconds_by_token_and_by_session(people) -> None:  # type: ignore[no-untyped-def]
    keycloak: LocalKeycloak = people["keycloak"]
    token = password_token(keycloak, "maja")["access_token"]
    path = f"/v1/contracts/{CONTRACT}/participants"
    async with (
        httpx.AsyncClient(base_url=people["gateway"], timeout=30) as http,
        httpx.AsyncClient(base_url=people["gateway"], timeout=30) as browser,
    ):
        await sign_in(browser, "maja")
        assert (await browser.get(path)).status_code == 200
        assert (await http.get(path, headers={"authorization": f"Bearer {token}"})).status_code == 200
        disabled_at = time.monotonic()
        keycloak.set_enabled("maja", False)
        try:

            async def refused() -> float | None:
                by_token = await http.get(path, headers={"authorization": f"Bearer {token}"})
                by_session = await browser.get(path)
                # the session has ended: its cookie reads as the public's, which may not see participants
                if by_token.status_code == 401 and by_session.status_code == 401:
                    return time.monotonic() - disabled_at
                return None

            took = await wait_until(
                refused, timeout=40, interval=1.0, what="the disabled person to be refused"
            )
        finally:
            keycloak.set_enabled("maja", True)
        assert took < 30, took
        assert (await browser.get("/v1/me")).status_code == 401


async def test_a_form_posted_with_the_session_cookie_needs_its_csrf_token_and_sign_out_ends_the_session(
    people,
) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=people["gateway"], timeout=30) as http:
        await sign_in(http, "astrid")
        me = (await http.get("/v1/me")).json()
        sample = (await http.get(f"/v1/contracts/{CONTRACT}/sample", params={"seed": "s", "size": 1})).json()
        if sample["payments"]:
            url = f"/v1/contracts/{CONTRACT}/payments/{sample['payments'][0]['payment_id']}/dispute"
            without = await http.post(url, json={"reason": "the plan is unsigned"})
            assert without.status_code == 403 and without.json()["type"].endswith("/csrf"), without.text
        refused = await http.post("/signout", data={})
        assert refused.status_code == 403 and refused.json()["type"].endswith("/csrf")
        out = await http.post("/signout", data={"csrf_token": me["csrf_token"]})
        assert out.status_code == 303 and "/protocol/openid-connect/logout" in out.headers["location"]
        assert (await http.get("/v1/me")).status_code == 401


async def test_the_verify_command_finds_a_changed_or_removed_entry_and_prune_keeps_the_rest_verifiable(
    people,
) -> None:  # type: ignore[no-untyped-def]
    world = people["world"]
    env = {**os.environ, "UTFALL_DATABASE_URL": world.database_url}

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "utfall_admin.cli", "audit", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    async with httpx.AsyncClient(base_url=people["gateway"], timeout=30) as http:
        for _ in range(20):
            await http.get("/v1/signals", headers={"authorization": f"Bearer {people['operator']}"})
    intact = admin("verify")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "0 broken" in intact.stdout, intact.stdout
    conn = await connect(world.database_url)
    try:
        chain, seq, rows = await conn.fetchrow(
            "SELECT chain, seq, rows FROM gateway.audit_entries WHERE route = '/v1/signals' ORDER BY seq DESC LIMIT 1 OFFSET 5"
        )
        await conn.execute(
            "UPDATE gateway.audit_entries SET rows = coalesce(rows, 0) + 1 WHERE chain = $1 AND seq = $2",
            chain,
            seq,
        )
        changed = admin("verify")
        assert (
            changed.returncode == 1
            and f"{chain} entry {seq}" in changed.stdout
            and "changed" in changed.stdout
        )
        await conn.execute(
            "UPDATE gateway.audit_entries SET rows = $3 WHERE chain = $1 AND seq = $2", chain, seq, rows
        )
        assert admin("verify").returncode == 0
        saved = await conn.fetchrow(
            "SELECT * FROM gateway.audit_entries WHERE chain = $1 AND seq = $2", chain, seq
        )
        await conn.execute("DELETE FROM gateway.audit_entries WHERE chain = $1 AND seq = $2", chain, seq)
        removed = admin("verify")
        assert removed.returncode == 1 and "missing" in removed.stdout, removed.stdout
        await conn.execute(
            f"INSERT INTO gateway.audit_entries VALUES ({', '.join(f'${i}' for i in range(1, len(saved) + 1))})",
            *saved.values(),
        )
        # the gateway's own role may add entries but not change or remove them
        gateway = await asyncpg.connect(world.gateway_database_url)
        try:
            for change in ("DELETE FROM gateway.audit_entries", "UPDATE gateway.audit_entries SET rows = 0"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with gateway.transaction():
                        await gateway.execute("SET TRANSACTION READ WRITE")
                        await gateway.execute(change)
        finally:
            await gateway.close()
        # retention: whole months before the cutoff go; an anchor keeps what is left verifiable
        await conn.execute(
            "UPDATE gateway.audit_entries SET at = at - interval '40 months' WHERE chain = $1 AND seq <= $2",
            chain,
            seq,
        )
        before = await conn.fetchval("SELECT count(*) FROM gateway.audit_entries WHERE chain = $1", chain)
        # moving the times changed the entries: re-chain them as the writer would have, to test prune alone
        await _rechain(conn, chain)
        pruned = admin("prune")
        assert pruned.returncode == 0, pruned.stdout + pruned.stderr
        after = await conn.fetchval("SELECT count(*) FROM gateway.audit_entries WHERE chain = $1", chain)
        assert after == before - seq, (before, after, seq)
        assert admin("verify").returncode == 0
    finally:
        await conn.close()


async def _rechain(conn: asyncpg.Connection, chain: str) -> None:
    from utfall_gateway.audit_store import entry_of
    from utfall_gateway.domain.audit import GENESIS, link

    prev = GENESIS
    for row in await conn.fetch("SELECT * FROM gateway.audit_entries WHERE chain = $1 ORDER BY seq", chain):
        entry = link(chain, row["seq"], entry_of(row).facts, prev)
        await conn.execute(
            "UPDATE gateway.audit_entries SET prev_hash = $3, hash = $4 WHERE chain = $1 AND seq = $2",
            chain,
            row["seq"],
            prev,
            entry.hash,
        )
        prev = entry.hash


async def test_no_exact_answer_leaves_before_its_entry_is_durable_when_the_gateway_is_sigkilled(
    people,
) -> None:  # type: ignore[no-untyped-def]
    stack: LocalStack = people["stack"]
    operator = {"authorization": f"Bearer {people['operator']}"}
    received: list[str] = []

    async def reader(http: httpx.AsyncClient, worker: int) -> None:
        for n in range(10_000):
            path = f"/v1/contracts/{CONTRACT}/participants?probe={worker}-{n}"
            try:
                answer = await http.get(path, headers=operator)
            except httpx.HTTPError:
                return
            if answer.status_code == 200:
                received.append(path)

    async with httpx.AsyncClient(base_url=people["gateway"], timeout=10) as http:
        readers = [asyncio.create_task(reader(http, w)) for w in range(8)]
        await wait_until(lambda: _enough(received, 200), timeout=60, interval=0.05, what="answers to arrive")
        stack.kill("gateway")
        await asyncio.gather(*readers)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: (stack.start_service("gateway"), stack.wait_ready(("gateway",))))
    conn = await asyncpg.connect(people["world"].database_url)
    try:
        recorded = {
            r["path"]
            for r in await conn.fetch("SELECT path FROM gateway.audit_entries WHERE path LIKE '%probe=%'")
        }
    finally:
        await conn.close()
    missing = [p for p in received if p not in recorded]
    assert len(received) >= 200 and not missing, (len(received), missing[:5])


async def _enough(found: list[str], n: int) -> bool:
    return len(found) >= n


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
