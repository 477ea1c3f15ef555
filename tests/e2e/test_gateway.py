"""The gateway on the real stack, with data that came through real Kafka: the role matrix (every endpoint ×
every role, 200/401/403 and no row outside the scope), disclosure control on live data, the public page
in headless Chromium, and a schemathesis run against /openapi.json."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from utfall_events.catalogue import is_register_fact_id
from utfall_events.payments import signed_amount
from utfall_measures.domain.windows import add_months
from utfall_synthetic.cli import post_events
from utfall_synthetic.cohort import PROVIDERS, CohortConfig, generate
from utfall_synthetic.registers import DEMO_REGISTER, register_extract

from ..helpers import create_key, register_provider, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
MIN_CELL = 10


def form_token(page: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


class Keys(dict[str, str]):
    def headers(self, who: str) -> dict[str, str]:
        if who == "public":
            return {}
        if who == "wrong":
            return {"authorization": "Bearer utf_nosuchkey_nosuchsecret"}
        return {"authorization": f"Bearer {self[who]}"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def data(stack) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    world = stack.world
    provider_keys = {
        p.provider_id: await create_key(world.kafka, "provider", provider_id=p.provider_id) for p in PROVIDERS
    }
    keys = Keys(
        {
            "operator": await create_key(world.kafka, "operator"),
            "provider": provider_keys["hvb-eken"],
            "other_provider": provider_keys["familjehem-norr"],
            "municipality": await create_key(world.kafka, "municipality", municipality_code="0180"),
            "other_municipality": await create_key(world.kafka, "municipality", municipality_code="2584"),
            "finance": await create_key(world.kafka, "finance", funder="stiftelsen-sociala-investeringar"),
            "other_finance": await create_key(world.kafka, "finance", funder="vast-impact-fund"),
        }
    )
    reporter = await create_key(world.kafka, "provider", provider_id="egen-hvb-norr")
    await register_provider(world.kafka, "hvb-test")  # the role matrix creates a key for it
    figures = [
        {
            "provider_id": "egen-hvb-norr",
            "measure_id": "no_replacement_6m",
            "measure_version": 1,
            "period": str(year),
            "target_group": "behaviour",
            "numerator": 31,
            "denominator": 40,
            "missing": 6,
            "method": "uppföljningssamtal",
        }
        for year in range(2021, 2026)
    ]
    async with httpx.AsyncClient(base_url=stack.services["ingest"].url, timeout=30) as http:
        answer = await http.post(
            "/v1/aggregates", json=figures, headers={"authorization": f"Bearer {reporter}"}
        )
        assert [r["status"] for r in answer.json()["receipts"]] == ["accepted"] * 5, answer.text
    cohort = generate(CohortConfig(subjects=700, seed=4242, today=date(2026, 10, 31)))
    counts = await post_events(
        stack.services["ingest"].url, provider_keys, cohort.events, batch=500, quiet=True
    )
    assert counts["rejected"] == 0, counts
    # the municipalities' register vouches for part of the cohort, and contradicts hvb-granen's reports
    register = await create_key(world.kafka, "register", register_id=DEMO_REGISTER)
    extract = register_extract(cohort.events, today=date(2026, 10, 31), contradicted_provider="hvb-granen")
    async with httpx.AsyncClient(base_url=stack.services["ingest"].url, timeout=120) as http:

        async def taken() -> httpx.Response | None:
            answer = await http.post(
                "/v1/registers/extracts", json=extract, headers={"authorization": f"Bearer {register}"}
            )
            return None if answer.status_code == 401 else answer  # until ingest has read the new key

        answer = await wait_until(taken, timeout=30, interval=0.5, what="ingest to know the register key")
        assert answer.status_code == 202 and set(answer.json()["counts"]) == {"accepted"}, answer.text[:2000]
    gateway = stack.services["gateway"].url
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:

        async def projected() -> bool:
            body = (
                await http.get("/v1/comparisons/planned_discharge", headers=keys.headers("operator"))
            ).json()
            total = body["total"] or {}
            return bool(total.get("closed")) and total["closed"] >= 0.5 * len(cohort.events) / 6

        await wait_until(projected, timeout=180, interval=1.0, what="the cohort to reach the read models")

        async def paid() -> bool:
            body = (
                await http.get(
                    "/v1/contracts/hvb-ungdom-stockholm/payments", headers=keys.headers("operator")
                )
            ).json()
            return len(body["payments"]) > 0

        await wait_until(paid, timeout=120, interval=1.0, what="payments to be triggered")

        # the public sees releases only: once the cohort has settled, publish the first one, as an operator does
        async def totals() -> list[Any]:
            return [
                (await http.get(f"/v1/measures/{m}/results", headers=keys.headers("operator"))).json()[
                    "totals"
                ]
                for m in ("planned_discharge", "no_replacement_24m", "followup_coverage_12m")
            ]

        last, steady_since = await totals(), asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - steady_since < 5:
            await asyncio.sleep(1)
            now = await totals()
            if now != last:
                last, steady_since = now, asyncio.get_running_loop().time()
        made = await http.post(
            "/v1/releases", json={"note": "Första"}, headers=keys.headers("operator"), timeout=300
        )
        assert made.status_code == 201, made.text
    first_event = next(e for e in cohort.events if e["source"] == "provider/hvb-eken")
    return {
        "keys": keys,
        "gateway": gateway,
        "ingest": stack.services["ingest"].url,
        "stack": stack,
        "provider_keys": provider_keys,
        "event_id": first_event["id"],
    }


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
PUBLIC_OK = ["public", "provider", "municipality", "finance", "operator"]
ROLES = [
    "public",
    "wrong",
    "provider",
    "other_provider",
    "municipality",
    "other_municipality",
    "finance",
    "other_finance",
    "operator",
]
EVENT = "{event}"
MATRIX: list[tuple[str, str, dict[str, int]]] = [
    ("GET", "/v1/measures", {r: 200 for r in PUBLIC_OK}),
    ("GET", "/v1/measures/planned_discharge", {r: 200 for r in PUBLIC_OK}),
    ("GET", "/v1/measures/planned_discharge/results?group_by=provider_id", {r: 200 for r in PUBLIC_OK}),
    ("GET", "/v1/comparisons/no_replacement_12m", {r: 200 for r in PUBLIC_OK}),
    ("GET", "/v1/providers/hvb-eken/scorecard", {r: 200 for r in PUBLIC_OK}),
    (
        "GET",
        "/v1/length-of-stay?group_by=provider_id",
        {"public": 401, "provider": 200, "municipality": 200, "finance": 200, "operator": 200},
    ),
    ("GET", "/v1/measures/planned_discharge/results?group_by=care_type", {"public": 403, "provider": 200}),
    ("GET", "/v1/comparisons/planned_discharge?care_type=hvb", {"public": 403, "operator": 200}),
    (
        "GET",
        "/v1/signals",
        {"public": 401, "wrong": 401, "provider": 403, "municipality": 403, "operator": 200},
    ),
    (
        "GET",
        "/v1/measures/no_replacement_12m/agreement",
        {"public": 401, "wrong": 401, "provider": 200, "municipality": 403, "finance": 403, "operator": 200},
    ),
    (
        "GET",
        "/v1/contracts",
        {
            "public": 401,
            "provider": 200,
            "other_provider": 200,
            "municipality": 200,
            "finance": 200,
            "operator": 200,
        },
    ),
    (
        "GET",
        "/v1/contracts/hvb-ungdom-stockholm",
        {
            "public": 401,
            "provider": 200,
            "other_provider": 403,
            "municipality": 200,
            "other_municipality": 403,
            "finance": 200,
            "other_finance": 403,
            "operator": 200,
        },
    ),
    (
        "GET",
        "/v1/contracts/hvb-ungdom-stockholm/versions",
        {
            "public": 401,
            "provider": 200,
            "other_provider": 403,
            "municipality": 200,
            "finance": 200,
            "other_finance": 403,
            "operator": 200,
        },
    ),
    (
        "GET",
        "/v1/contracts/hvb-ungdom-stockholm/participants",
        {
            "public": 401,
            "provider": 200,
            "other_provider": 403,
            "municipality": 200,
            "other_municipality": 403,
            "finance": 403,
            "other_finance": 403,
            "operator": 200,
        },
    ),
    (
        "GET",
        "/v1/contracts/hvb-ungdom-stockholm/payments",
        {
            "public": 401,
            "provider": 200,
            "other_provider": 403,
            "municipality": 200,
            "other_municipality": 403,
            "finance": 200,
            "other_finance": 403,
            "operator": 200,
        },
    ),
    (
        "GET",
        "/v1/payments",
        {"public": 401, "provider": 200, "municipality": 200, "finance": 200, "operator": 200},
    ),
    (
        "GET",
        "/v1/events/provider/hvb-eken/" + EVENT + "/status",
        {
            "public": 401,
            "provider": 200,
            "other_provider": 403,
            "municipality": 403,
            "finance": 403,
            "operator": 200,
        },
    ),
    (
        "GET",
        "/v1/admin/keys",
        {"public": 401, "provider": 403, "municipality": 403, "finance": 403, "operator": 200},
    ),
    (
        "POST",
        "/v1/admin/keys",
        {"public": 401, "provider": 403, "municipality": 403, "finance": 403, "operator": 201},
    ),
    (
        "GET",
        "/v1/contracts/hvb-ungdom-stockholm/webhooks",
        {
            "public": 401,
            "provider": 403,
            "other_provider": 403,
            "municipality": 200,
            "other_municipality": 403,
            "finance": 403,
            "operator": 200,
        },
    ),
    ("GET", "/v1/contracts/no-such-contract", {"public": 401, "operator": 404, "provider": 404}),
]


@pytest.mark.parametrize(("method", "path", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX])
async def test_role_matrix(data, method: str, path: str, expected: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    keys: Keys = data["keys"]
    url = path.replace(EVENT, data["event_id"])
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=30) as http:
        for role in ROLES:
            want = expected.get(role, 401 if role == "wrong" else None)
            if want is None:
                continue
            body = (
                {"role": "provider", "provider_id": "hvb-test", "label": "matrix"}
                if method == "POST"
                else None
            )
            response = await http.request(method, url, headers=keys.headers(role), json=body)
            assert response.status_code == want, (role, response.text[:300])
            if want >= 400:
                assert response.headers["content-type"].startswith("application/problem+json"), role
                assert response.json()["status"] == want


async def test_no_row_outside_the_scope(data) -> None:  # type: ignore[no-untyped-def]
    keys: Keys = data["keys"]
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=30) as http:

        async def get(path: str, who: str, **params: Any) -> Any:
            response = await http.get(path, headers=keys.headers(who), params=params)
            assert response.status_code == 200, (path, who, response.text[:200])
            return response.json()

        contracts = {c["contract_id"] for c in (await get("/v1/contracts", "municipality"))["contracts"]}
        assert "hvb-ungdom-stockholm" in contracts and "rate-card-vastra-gotaland" not in contracts
        contracts = {c["contract_id"] for c in (await get("/v1/contracts", "other_finance"))["contracts"]}
        assert contracts == {"rate-card-vastra-gotaland"}
        assert (await get("/v1/contracts", "other_provider"))["contracts"] == []
        people = await get("/v1/contracts/hvb-ungdom-stockholm/participants", "provider", limit=1000)
        assert people["participants"] and {p["provider_id"] for p in people["participants"]} == {"hvb-eken"}
        everyone = await get("/v1/contracts/hvb-ungdom-stockholm/participants", "operator", limit=1000)
        assert len({p["provider_id"] for p in everyone["participants"]}) > 1
        paid = await get("/v1/contracts/hvb-ungdom-stockholm/payments", "provider", limit=1000)
        assert paid["payments"] and {p["provider_id"] for p in paid["payments"]} == {"hvb-eken"}
        mine = await get("/v1/payments", "finance", limit=1000)
        assert {p["contract_id"] for p in mine["payments"]} == {"hvb-ungdom-stockholm"}

        # the public's results come from the latest release: its tables answer, nothing else does
        latest = (await get("/v1/releases/latest", "public"))["release"]
        for measure in ("planned_discharge", "no_replacement_12m", "followup_coverage_12m"):
            for group in ("", "provider_id", "sex", "age_band", "target_group"):
                body = await get(f"/v1/measures/{measure}/results", "public", group_by=group, limit=1000)
                assert body["release"]["number"] == latest and body["rows"], (measure, group)
                for row in body["rows"] + body["totals"]:
                    assert row["exact"] is False
                    if row["status"] == "ok":
                        assert row["episodes"] >= MIN_CELL, row
                    else:
                        assert row["episodes"] is None and row["achieved"] is None and row["ci_low"] is None
            for group in (
                "provider_id,target_group",
                "municipality_code",
                "sex,age_band",
                "care_type",
                "unit_id",
            ):
                refused = await http.get(
                    f"/v1/measures/{measure}/results",
                    params={"group_by": group},
                    headers=keys.headers("public"),
                )
                assert refused.status_code == 403 and refused.json()["type"].endswith("/not-published"), group
        # a provider sees its own cells exactly and live, and others' only as the release shows them
        public_rows = {
            (r["provider_id"], r["discharge_year"], r["source"]): r
            for r in (
                await get(
                    "/v1/measures/planned_discharge/results", "public", group_by="provider_id", limit=1000
                )
            )["rows"]
        }
        own = await get(
            "/v1/measures/planned_discharge/results", "provider", group_by="provider_id", limit=1000
        )
        for row in own["rows"]:
            if row["provider_id"] == "hvb-eken" and row["source"] == "events":
                assert row["exact"] and row["status"] == "ok"
            else:
                assert (
                    not row["exact"]
                    and row == public_rows[(row["provider_id"], row["discharge_year"], row["source"])]
                )
        narrow = await get(
            "/v1/measures/planned_discharge/results",
            "provider",
            group_by="provider_id,target_group",
            limit=1000,
        )
        assert narrow["rows"] and {r["provider_id"] for r in narrow["rows"]} == {"hvb-eken"}
        assert all(r["exact"] for r in narrow["rows"]) and narrow["release"] is None
        stays = await get("/v1/length-of-stay", "provider", group_by="provider_id")
        assert [r["provider_id"] for r in stays["rows"]] == ["hvb-eken"]


async def test_event_status_follows_an_event_to_payment(data) -> None:  # type: ignore[no-untyped-def]
    keys: Keys = data["keys"]
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=30) as http:
        status = (
            await http.get(
                f"/v1/events/provider/hvb-eken/{data['event_id']}/status", headers=keys.headers("provider")
            )
        ).json()
    assert status["stage"] in ("projected", "outcome", "paid")
    assert status["accepted"]["status"] == "accepted" and status["projected"] is not None


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


async def test_right_censored_cohorts_are_preliminary_in_the_api_and_on_the_page(data) -> None:  # type: ignore[no-untyped-def]
    """Issue 18 item 1: for no_replacement_24m a re-placement decides "not achieved" at once, success only after
    24 months: a discharge year whose windows are not all closed has no rate anywhere, only its share closed."""
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=30) as http:
        measure = (await http.get("/v1/measures/no_replacement_24m")).json()
        months, grace = measure["window_months"], measure["grace_days"]
        assert "preliminary" in measure["final_when"]
        rows = (
            await http.get("/v1/measures/no_replacement_24m/results", params={"source": "events"})
        ).json()["rows"]
        # a recent discharge year, whose windows are still open
        open_year = max(
            r["discharge_year"] for r in rows if r["status"] == "ok" and r["result"] == "preliminary"
        )
        comp = (await http.get("/v1/comparisons/no_replacement_24m", params={"year": open_year})).json()
        shown = [p for p in comp["providers"] if p["status"] == "ok" and p["source"] == "events"]
        assert shown
        for p in shown:
            assert p["result"] == "preliminary" and p["observed_rate"] is None and p["funnel"] is None, p
            assert 0 <= p["windows_closed_share"] < 1 and p["risk_adjusted"] is None
        assert comp["total"]["result"] == "preliminary" and comp["funnel"] is None
        today = date.today()
        for r in rows:
            if r["status"] != "ok":
                continue
            last_closes = add_months(date(r["discharge_year"], 12, 31), months) + timedelta(days=grace)
            first_closes = add_months(date(r["discharge_year"], 1, 1), months) + timedelta(days=grace)
            if last_closes < today:
                assert r["result"] == "final" and r["observed_rate"] is not None, r
            elif first_closes >= today:
                assert (
                    r["result"] == "preliminary"
                    and r["observed_rate"] is None
                    and r["windows_closed_share"] == 0
                )
        page = (await http.get("/", params={"measure": "no_replacement_24m", "year": open_year})).text
        assert "Preliminärt" in page and 'id="funnel"' not in page
        # the trend by discharge year: a line through final years only; open years are marked, not plotted
        national = {
            t["discharge_year"]: t
            for t in (
                await http.get("/v1/measures/no_replacement_24m/results", params={"source": "events"})
            ).json()["totals"]
        }
        final_years = [y for y, t in national.items() if t["status"] == "ok" and t["result"] == "final"]
        open_years = [y for y, t in national.items() if t["result"] == "preliminary"]
        assert open_years and page.count('class="trend-point"') == len(final_years)
        for year in open_years:
            assert f'class="trend-open" data-year="{year}"' in page
        # without a year the page shows the latest final one, not one that still moves
        default = (await http.get("/", params={"measure": "no_replacement_24m"})).text
        if final_years:
            assert f'<option value="{max(final_years)}" selected>' in default


async def test_public_page_in_headless_chromium(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import async_playwright

    chromium = _chromium()
    assert chromium, "Debian's chromium is needed (scripts/bootstrap.sh --system installs it)"
    gateway = data["gateway"]
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        years = sorted(
            {
                r["discharge_year"]
                for r in (await http.get("/v1/measures/no_replacement_6m/results")).json()["rows"]
            }
        )
        year = years[-2] if len(years) > 1 else years[-1]
        api = (await http.get("/v1/comparisons/no_replacement_6m", params={"year": year})).json()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        await page.goto(gateway + "/")
        assert await page.locator("h1").inner_text() == "Öppna jämförelser: utfall av placeringar"
        await page.select_option("#measure", "no_replacement_6m")
        await page.select_option("#year", str(year))
        await page.click("button[type=submit]")
        await page.wait_for_selector("#chart")
        labelled = page.locator('#results tbody tr[data-source="self_reported"] td.source')
        assert (
            await labelled.count() == sum(1 for p in api["providers"] if p["source"] == "self_reported") >= 1
        )
        assert await labelled.first.inner_text() == "självrapporterat"
        rows = await page.locator("#results tbody tr").all()
        assert len(rows) == len(api["providers"])
        for row, provider in zip(rows, api["providers"], strict=True):
            assert await row.get_attribute("data-provider") == provider["provider_id"]
            # the registry's display name, not the id (every test provider is registered as "Testvården <id>")
            assert provider["display_name"] == f"Testvården {provider['provider_id']}"
            assert await row.locator("th").inner_text() == provider["display_name"]  # the row's header
            assert await row.get_attribute("data-source") == provider["source"]
            if provider["status"] == "ok":
                achieved = await row.locator("td.achieved").inner_text()
                assert int(achieved) == provider["achieved"]
                rate = await row.locator("td.rate").inner_text()
                assert rate == f"{provider['observed_rate'] * 100:.1f} %"
                low, high = (await row.locator("td.interval").inner_text()).rstrip(" %").split("–")
                assert (float(low), float(high)) == (
                    round(provider["ci_low"] * 100, 1),
                    round(provider["ci_high"] * 100, 1),
                )
            else:
                assert "Undertryckt" in await row.locator("td.suppressed").inner_text()
        points = await page.locator("#chart g.row.ok circle").count()
        assert points == sum(
            1 for p in api["providers"] if p["status"] == "ok" and p["observed_rate"] is not None
        )
        # the funnel plot: one dot per provider judged, labelled as the API labels it; the national row
        judged = {p["provider_id"]: p["funnel"]["label"] for p in api["providers"] if p["funnel"]}
        assert api["funnel"] is not None and judged
        dots = page.locator("#funnel circle.dot")
        assert await dots.count() == len(judged)
        for i in range(await dots.count()):
            dot = dots.nth(i)
            assert judged[await dot.get_attribute("data-provider") or ""] == await dot.get_attribute(
                "data-label"
            )
        national = await page.locator("#national td.rate").inner_text()
        assert national == f"{api['total']['observed_rate'] * 100:.1f} %"
        assert await page.locator("#national-line").count() == 1
        assert (
            await page.locator("#definition").get_attribute("href") == "/measures/no_replacement_6m?lang=sv"
        )
        # the measure's readable definition, generated from the catalogue, in both languages
        definition = await browser.new_page()
        await definition.goto(gateway + "/measures/no_replacement_6m?lang=sv")
        assert await definition.locator("h1").inner_text() == "Ingen ny placering inom 6 månader"
        assert "6 månader efter utskrivningsdagen" in await definition.locator("#window").inner_text()
        assert "ITT" in await definition.locator("#denominator").inner_text()
        assert await definition.locator("#versions li").count() >= 1
        await definition.click("#language")
        assert await definition.locator("h1").inner_text() == "No re-placement within 6 months"
        assert "preliminary" in await definition.locator("#final").inner_text()
        await definition.click("#back")
        assert await definition.locator("#measure").input_value() == "no_replacement_6m"
        await definition.close()
        shot = artifacts / "public-page.png"
        await page.screenshot(path=str(shot), full_page=True)
        await page.click("#language")
        assert await page.locator("h1").inner_text() == "Open comparisons: outcomes of out-of-home care"
        await browser.close()
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


async def test_releases_are_frozen_downloadable_and_audited(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    """An operator publishes releases; they list, download as CSV and JSON with a suppression flag per cell and
    never a number in a suppressed cell (nor an outcome in a preliminary one); their audit's figures are in the
    manifest and its exact counts are never served; a release does not move when the data do; the next lists
    what changed; the page shows the latest release and nothing else."""
    import csv
    import io

    from ..helpers import ended, person, started, uid

    keys: Keys = data["keys"]
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=300) as http:
        for who, status in (("public", 401), ("provider", 403), ("municipality", 403)):
            refused = await http.post("/v1/releases", json={}, headers=keys.headers(who))
            assert (
                refused.status_code == status
                and refused.headers["content-type"] == "application/problem+json"
            )
        first = (await http.get("/v1/releases/latest")).json()
        number = first["release"]
        again = await http.post("/v1/releases", json={"note": "igen"}, headers=keys.headers("operator"))
        assert (
            again.status_code == 200 and again.json()["release"] == number
        ), (  # nothing moved: no new release
            json.dumps(
                (await http.get(f"/v1/releases/{again.json()['release']}/changes")).json()["changes"][:6]
            )
        )
        assert first["note"] == "Första" and first["min_cell"] == MIN_CELL and first["margin"] == MIN_CELL
        assert first["audit"]["narrowest_interval"] >= MIN_CELL and first["audit"]["sensitive_cells"] > 0
        catalogue = {m["id"] for m in (await http.get("/v1/measures")).json()["measures"]}
        assert {m["measure_id"] for m in first["measures"]} == catalogue
        assert number in {r["release"] for r in (await http.get("/v1/releases")).json()["releases"]}
        assert (await http.get("/v1/releases/999999")).status_code == 404

        raw = await http.get(f"/v1/releases/{number}/data.json")
        assert "atoms" not in raw.text and "shares" not in raw.text  # the audit's exact counts stay inside
        body = raw.json()
        cells = body["cells"]
        assert len(cells) == sum(m["cells"] for m in first["measures"])
        numeric = (
            "achieved",
            "not_achieved",
            "missing",
            "pending",
            "closed",
            "episodes",
            "observed_rate",
            "oe_ratio",
        )
        outcomes = ("achieved", "not_achieved", "missing", "pending", "closed", "observed_rate")
        for c in cells:
            if c["suppressed"]:
                assert all(c[k] is None for k in numeric), c
            else:
                assert c["episodes"] >= MIN_CELL, c
                if c["result"] == "preliminary":
                    assert all(c[k] is None for k in outcomes) and c["windows_closed_share"] is not None, c
        assert any(c["suppressed"] for c in cells) and any(not c["suppressed"] for c in cells)
        assert {c["table"] for c in cells} >= {"provider_year", "sex_year", "target_group_year"}
        assert "care_type_year" not in {c["table"] for c in cells}
        text = (await http.get(f"/v1/releases/{number}/data.csv")).text
        (artifacts / "release.csv").write_text(text)
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == len(cells)
        assert {row["suppressed"] for row in rows} == {"true", "false"}
        for row in rows:
            if row["suppressed"] == "true":
                assert all(row[k] == "" for k in numeric), row
            else:
                assert int(row["episodes"]) >= MIN_CELL, row

        # the release's national figure is what the live figures were (nothing has moved since)
        live = (await http.get("/v1/comparisons/planned_discharge", headers=keys.headers("operator"))).json()[
            "total"
        ]
        national = {
            c["discharge_year"]: c
            for c in cells
            if c["measure_id"] == "planned_discharge"
            and c["table"] == "national_year"
            and not c["suppressed"]
        }
        exact = (
            await http.get("/v1/measures/planned_discharge/results", headers=keys.headers("operator"))
        ).json()["totals"]
        assert national and all(
            national[t["discharge_year"]]["closed"] == t["closed"]
            and national[t["discharge_year"]]["achieved"] == t["achieved"]
            for t in exact
            if t["discharge_year"] in national
        )

        # the page shows the release and only releases
        page = (await http.get("/", params={"measure": "planned_discharge"})).text
        assert f'data-release="{number}"' in page and f"/v1/releases/{number}/data.csv" in page
        assert 'id="protection"' in page and "ringa in" in page
        assert (await http.get("/", params={"release": "live"})).status_code == 422
        assert (await http.get("/", params={"release": "999999"})).status_code == 404

        # new data: the live figures move, the release does not
        provider_key = data["provider_keys"]["hvb-granen"]
        events = []
        for _ in range(3):
            episode = uid("rel-")
            events += [
                started("hvb-granen", episode, person(), start="2024-02-01", unit="granen-1"),
                ended("hvb-granen", episode, end="2024-06-01", reason="planned"),
            ]
        posted = await http.post(
            data["ingest"] + "/v1/events",
            content=json.dumps(events),
            headers={
                "content-type": "application/cloudevents-batch+json",
                "authorization": f"Bearer {provider_key}",
            },
        )
        assert posted.status_code == 202, posted.text

        async def moved() -> bool:
            total = (
                await http.get("/v1/comparisons/planned_discharge", headers=keys.headers("operator"))
            ).json()["total"]
            return bool(total) and total["closed"] == live["closed"] + 3

        await wait_until(moved, timeout=90, interval=0.5, what="the new episodes in the live figures")
        assert (await http.get(f"/v1/releases/{number}/data.json")).json() == body
        public_before = (await http.get("/v1/comparisons/planned_discharge")).json()
        assert public_before["release"]["number"] == number  # the public still sees the release
        made = await http.post("/v1/releases", headers=keys.headers("operator"))
        assert made.status_code == 201, made.text
        second = made.json()
        again = await http.post("/v1/releases", headers=keys.headers("operator"))  # nothing moved since
        assert again.status_code == 200 and again.json()["release"] == number + 1
        assert second["release"] == number + 1 and second["previous"] == number
        assert second["audit"]["narrowest_interval"] >= MIN_CELL
        changes = (await http.get(f"/v1/releases/{number + 1}/changes")).json()["changes"]
        national_changes = [
            c
            for c in changes
            if c["measure_id"] == "planned_discharge"
            and c["table"] == "national_year"
            and c["key"]["discharge_year"] == 2024
        ]
        assert national_changes and "episodes" in national_changes[0]["fields"], changes[:5]
        assert (await http.get(f"/v1/releases/{number}/data.json")).json() == body  # release 1 is frozen
        page = (await http.get("/", params={"measure": "planned_discharge"})).text
        assert f'data-release="{number + 1}"' in page
        assert (await http.get("/v1/comparisons/planned_discharge")).json()["release"]["number"] == number + 1
        old = (await http.get("/v1/comparisons/planned_discharge", params={"release": number})).json()
        assert old == public_before


COMPARED = (
    "episodes",
    "achieved",
    "not_achieved",
    "missing",
    "pending",
    "excluded",
    "unverified",
    "closed",
    "observed_rate",
    "itt_rate",
    "ci_low",
    "ci_high",
    "windows_closed_share",
    "result",
)
FILTERS = {
    "care_type": ["hvb", "family_home", "supported_housing", "sis", "outpatient"],
    "target_group": [
        "behaviour",
        "substance_use",
        "mental_health",
        "neuropsychiatric",
        "unaccompanied",
        "other",
    ],
    "legal_basis": ["SoL", "LVU"],
    "sex": ["female", "male"],
    "age_band": ["0-12", "13-15", "16-17", "18-20"],
    "municipality_code": ["0180", "1480"],
    "county_code": ["01", "14"],
    "unit_id": ["eken-1"],
}


def _release_key(cell: dict[str, Any]) -> tuple[Any, ...]:
    from ..attacker import _key

    return _key(cell)


async def _crawl(http: httpx.AsyncClient, numbers: list[int], providers: list[str]) -> dict[str, int]:
    """Every public question the API accepts, for every release: every answer must be the release's own cell
    (one answer per cell, however asked), every question no release answers refused with 403."""
    published = {n: (await http.get(f"/v1/releases/{n}/data.json")).json()["cells"] for n in numbers}
    cell = {(n, _release_key(c)): c for n, cells in published.items() for c in cells}
    measures = [m["id"] for m in (await http.get("/v1/measures")).json()["measures"]]
    seen = {"answers": 0, "rows": 0, "refused": 0}

    def same(n: int, key: tuple[Any, ...], row: dict[str, Any]) -> None:
        want = cell[(n, key)]
        assert (row["status"] == "suppressed") == want["suppressed"], (n, key, row)
        if key[1] == "verified":  # in its own words: excluded and unverified, never missing or pending
            assert "missing" not in row and "pending" not in row and "excluded" in row, (n, key, row)
        for k in COMPARED:
            if k in row:
                assert row[k] == want[k], (n, key, k, row[k], want[k])
        seen["rows"] += 1

    async def ask(path: str, **params: Any) -> dict[str, Any] | None:
        response = await http.get(path, params={k: v for k, v in params.items() if v is not None})
        if response.status_code == 403:
            assert response.json()["type"].endswith("/not-published"), response.text
            seen["refused"] += 1
            return None
        assert response.status_code == 200, (path, params, response.text[:300])
        seen["answers"] += 1
        return response.json()

    for n in numbers:
        years = sorted({c["discharge_year"] for c in published[n] if c["table"] == "national_year"})
        for m in measures:
            for asked in [None, *years]:
                body = await ask(f"/v1/comparisons/{m}", year=asked, release=n)
                assert body is not None and body["release"]["number"] == n
                year = body["year"]  # without one asked: the latest final year
                assert asked is None or year == asked
                for p in body["providers"]:
                    key = (m, p["source"], "provider_year", p["provider_id"], year)
                    same(n, key, p)
                    oe = (p.get("risk_adjusted") or {}).get("oe_ratio")
                    assert oe == cell[(n, key)]["oe_ratio"] and (
                        (p.get("funnel") or {}).get("label") == cell[(n, key)]["funnel_label"]
                    )
                if body["total"] is not None:
                    same(n, (m, body["total"]["source"], "national_year", year), body["total"])
                for name, values in FILTERS.items():
                    if name in ("sex", "age_band", "unit_id"):
                        continue  # not a comparison filter
                    assert (
                        await ask(f"/v1/comparisons/{m}", year=year, release=n, **{name: values[0]}) is None
                    )
            for group in [
                "",
                "provider_id",
                "sex",
                "age_band",
                "target_group",
                *FILTERS,
                "provider_id,sex",
                "sex,age_band",
            ]:
                for period in ("year", "quarter"):
                    for source in ("all", "events", "self_reported"):
                        body = await ask(
                            f"/v1/measures/{m}/results",
                            group_by=group,
                            period=period,
                            source=source,
                            release=n,
                            limit=1000,
                        )
                        if body is None:
                            assert period == "quarter" or group not in (
                                "",
                                "provider_id",
                                "sex",
                                "age_band",
                                "target_group",
                            )
                            continue
                        table = {"": "national_year", "provider_id": "provider_year"}.get(
                            group, f"{group}_year"
                        )
                        for row in body["rows"]:
                            dims = (
                                (row["provider_id"],)
                                if group == "provider_id"
                                else (row[group],)
                                if group
                                else ()
                            )
                            same(n, (m, row["source"], table, *dims, row["discharge_year"]), row)
                        for row in body["totals"]:
                            same(n, (m, row["source"], "national_year", row["discharge_year"]), row)
            for name, values in [("provider_id", providers), *FILTERS.items()]:
                for value in values:
                    body = await ask(f"/v1/measures/{m}/results", release=n, limit=1000, **{name: value})
                    if body is None:
                        assert name not in ("provider_id", "sex", "age_band", "target_group")
                        continue
                    table = "provider_year" if name == "provider_id" else f"{name}_year"
                    for row in body["rows"]:
                        same(n, (m, row["source"], table, value, row["discharge_year"]), row)
        for provider in providers:
            response = await http.get(f"/v1/providers/{provider}/scorecard", params={"release": n})
            if response.status_code == 404:
                continue
            assert response.status_code == 200 and response.json()["exact"] is False
            for item in response.json()["measures"]:
                if item["provider"] is not None:
                    same(
                        n,
                        (
                            item["measure"]["id"],
                            item["provider"]["source"],
                            "provider_year",
                            provider,
                            item["year"],
                        ),
                        item["provider"],
                    )
            seen["answers"] += 1
    assert (await http.get("/v1/length-of-stay", params={"group_by": "provider_id"})).status_code == 401
    return seen


def _truth(records: list[Any], instance: str) -> dict[int, dict[tuple[Any, ...], int]]:
    """Every released cell's true number of episodes, from what each release's audit kept, summed here."""
    from utfall_events.releases import ReleaseAuditV1

    out: dict[int, dict[tuple[Any, ...], int]] = {}
    for record in records:
        if not record.key.decode().startswith(f"{instance}/release:") or not record.key.endswith(b":audit"):
            continue
        audit = ReleaseAuditV1.model_validate_json(record.value)
        sizes: dict[tuple[Any, ...], int] = {}
        for measure_id, tag in audit.measures:
            for atom in audit.atoms:
                n = sum(v for k, v in atom.counts.items() if k.startswith(tag + ":"))
                kind, *rest = atom.key
                keys: list[tuple[Any, ...]] = []
                if kind == "P":
                    p, y = rest
                    keys = [
                        (measure_id, "events", "provider_year", p, y),
                        (measure_id, "events", "national_year", y),
                    ]
                elif kind == "S":
                    d, v, y = rest
                    keys = [(measure_id, "events", f"{d}_year", v, y)]
                elif kind == "R" and rest[0] == tag:
                    _, p, y = rest
                    keys = [
                        (measure_id, "self_reported", "provider_year", p, y),
                        (measure_id, "self_reported", "national_year", y),
                    ]
                for key in keys:
                    sizes[key] = sizes.get(key, 0) + n
        out[audit.release] = sizes
    return out


async def _own_figures(http: httpx.AsyncClient, key: str, provider: str, measures: list[str]) -> Any:
    """What a provider knows of itself: its exact counts per year, and its share of every breakdown."""
    from ..attacker import OwnFigures

    own = OwnFigures(provider)
    auth = {"authorization": f"Bearer {key}"}
    for m in measures:
        rows = (
            await http.get(
                f"/v1/measures/{m}/results",
                params={"provider_id": provider, "source": "events", "limit": 1000},
                headers=auth,
            )
        ).json()["rows"]
        for r in rows:
            assert r["exact"]
            own.years[(m, r["discharge_year"])] = _event_counts(r)
        for dim in ("sex", "age_band", "target_group"):
            rows = (
                await http.get(
                    f"/v1/measures/{m}/results",
                    params={"provider_id": provider, "group_by": dim, "source": "events", "limit": 1000},
                    headers=auth,
                )
            ).json()["rows"]
            for r in rows:
                assert r["exact"]
                own.shares[(m, dim, r[dim], r["discharge_year"])] = _event_counts(r)
    return own


def _event_counts(row: dict[str, Any]) -> dict[str, int]:
    """A row's four counts in the attacker's terms: a verified measure's excluded and unverified stand where
    the others' missing and pending do (the release's documentation says so)."""
    return {
        "achieved": row["achieved"],
        "not_achieved": row["not_achieved"],
        "missing": row["missing"] if "missing" in row else row["excluded"],
        "pending": row["pending"] if "pending" in row else row["unverified"],
    }


async def test_an_attacker_holding_every_public_answer_narrows_no_small_cell(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    """Issue 30: the attacker of docs/architecture.md (Privacy) on the real stack. It crawls every public
    endpoint with every filter value and every release (each answer must be the release's own cell), adds the
    registry's providers and one provider's own exact figures, and bounds every suppressed cell by linear
    programming across all of it: no cell with fewer than MIN_CELL episodes is narrower than the margin. The
    control: the same kind of attacker on the answers the live API gave before (per-answer suppression, every
    filter) narrows small cells, most to their exact value."""
    import time

    from utfall_events.topics import RELEASES
    from utfall_gateway.auth import PUBLIC
    from utfall_gateway.domain.results import STRATA, compare, comparison_query

    from ..attacker import IntervalAttacker, SumsAttacker
    from ..helpers import ended, person, read_topic, started, uid

    keys: Keys = data["keys"]
    world = data["stack"].world
    attacker_provider = "hvb-eken"
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=300) as http:
        # one more release after a change in one year at one provider, so some years change and others not
        key = data["provider_keys"]["stodboende-syd"]
        events = []
        for _ in range(2):
            episode = uid("atk-")
            events += [
                started(
                    "stodboende-syd",
                    episode,
                    person(),
                    start="2023-01-10",
                    unit="sb-syd-malmo",
                    care_type="supported_housing",
                ),
                ended("stodboende-syd", episode, end="2023-09-01", reason="planned"),
            ]
        posted = await http.post(
            data["ingest"] + "/v1/events",
            content=json.dumps(events),
            headers={"content-type": "application/cloudevents-batch+json", "authorization": f"Bearer {key}"},
        )
        assert posted.status_code == 202 and all(
            r["status"] == "accepted" for r in posted.json()["receipts"]
        ), posted.text
        before = (
            await http.get(
                "/v1/measures/planned_discharge/results",
                params={"provider_id": "stodboende-syd", "year": 2023},
                headers=keys.headers("operator"),
            )
        ).json()

        async def arrived() -> bool:
            now = (
                await http.get(
                    "/v1/measures/planned_discharge/results",
                    params={"provider_id": "stodboende-syd", "year": 2023},
                    headers=keys.headers("operator"),
                )
            ).json()
            return now["rows"] != before["rows"]

        await wait_until(arrived, timeout=90, interval=0.5, what="the new episodes")
        await asyncio.sleep(3)  # every measure's facts of them
        made = await http.post("/v1/releases", json={"note": "attack"}, headers=keys.headers("operator"))
        assert made.status_code in (200, 201), made.text
        numbers = sorted(r["release"] for r in (await http.get("/v1/releases")).json()["releases"])
        assert len(numbers) >= 2
        registry = [p["provider_id"] for p in (await http.get("/v1/providers")).json()["providers"]]
        measures = [m["id"] for m in (await http.get("/v1/measures")).json()["measures"]]

        started_at = time.monotonic()
        crawled = await _crawl(http, numbers, registry)
        published = {n: (await http.get(f"/v1/releases/{n}/data.json")).json()["cells"] for n in numbers}
        # the verified measures are released beside the reported ones, and attacked with them
        verified = [c for c in published[numbers[-1]] if c["source"] == "verified"]
        assert verified and {c["measure_id"] for c in verified} == {
            m for m in measures if is_register_fact_id(m)
        }
        own_figures = await _own_figures(
            http, data["provider_keys"][attacker_provider], attacker_provider, measures
        )
        records = await read_topic(world.kafka, RELEASES)
        truth = _truth(records, world.instance)
        assert set(truth) >= set(numbers)
        # the truth the audit kept is the truth: the latest release's provider cells against the live figures
        latest = numbers[-1]
        operator_rows = (
            await http.get(
                "/v1/measures/planned_discharge/results",
                params={"group_by": "provider_id", "source": "events", "limit": 1000},
                headers=keys.headers("operator"),
            )
        ).json()["rows"]
        for r in operator_rows:
            assert (
                truth[latest][
                    ("planned_discharge", "events", "provider_year", r["provider_id"], r["discharge_year"])
                ]
                == r["episodes"]
            )

        def small_cell(number: int, key: tuple[Any, ...]) -> bool:
            """What the assertion is about: small cells (the attacker's own aside); bounding the others would
            only cost time."""
            return truth[number][key] < MIN_CELL and not (
                key[2] == "provider_year" and key[3] == attacker_provider
            )

        public_bounds = IntervalAttacker(published, registry).bounds(small_cell)
        own = {n: own_figures for n in numbers}  # hvb-eken's data did not change between the releases
        provider_bounds = IntervalAttacker(published, registry, own=own).bounds(small_cell)
        elapsed = time.monotonic() - started_at

        def small(b: Any) -> bool:
            return small_cell(b.release, b.cell)

        attacked = [b for b in public_bounds if small(b)] + [b for b in provider_bounds if small(b)]
        widths = sorted(b.width for b in attacked)
        narrow = [b for b in attacked if b.width < MIN_CELL]

        # the control: the live API's answers before releases (per-answer suppression, every filter)
        control_found: list[tuple[Any, ...]] = []
        control_exact = 0
        control_cells = 0
        for m in measures:
            if is_register_fact_id(m):
                continue  # the live API before releases had no verified measures
            fine: list[dict[str, Any]] = []
            cursor = None
            while True:  # every page of the operator's exact figures
                page = (
                    await http.get(
                        f"/v1/measures/{m}/results",
                        params={
                            "group_by": "provider_id,care_type,target_group,legal_basis,sex,age_band",
                            "source": "events",
                            "limit": 1000,
                            **({"cursor": cursor} if cursor else {}),
                        },
                        headers=keys.headers("operator"),
                    )
                ).json()
                fine += page["rows"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            for year in sorted({r["discharge_year"] for r in fine}):
                of_year = [r for r in fine if r["discharge_year"] == year]
                atoms = sorted(
                    {(r["provider_id"], r["care_type"], r["target_group"], r["legal_basis"]) for r in of_year}
                )
                lp = SumsAttacker(atoms)
                answers = [({}, of_year)]
                for name in ("care_type", "target_group", "legal_basis"):
                    for value in sorted({r[name] for r in of_year}):
                        answers.append(({name: value}, [r for r in of_year if r[name] == value]))
                hidden: set[str] = set()
                for filters, subset in answers:
                    strata = [
                        {
                            **{k: r[k] for k in ("provider_id", *STRATA)},
                            **{
                                k: r[k]
                                for k in ("achieved", "not_achieved", "missing", "pending", "windows_closed")
                            },
                        }
                        for r in subset
                    ]
                    old = compare(
                        strata,
                        [],
                        {},
                        comparison_query(m, year, filters),
                        principal=PUBLIC,
                        min_cell=MIN_CELL,
                    )
                    match = [
                        a
                        for a in atoms
                        if all(
                            dict(
                                zip(
                                    ("provider_id", "care_type", "target_group", "legal_basis"),
                                    a,
                                    strict=True,
                                )
                            )[k]
                            == v
                            for k, v in filters.items()
                        )
                    ]
                    for p in old["providers"]:
                        mine = [a for a in match if a[0] == p["provider_id"]]
                        if p["status"] == "ok":
                            lp.shown(mine, p["closed"])
                        elif not filters:
                            hidden.add(p["provider_id"])
                    if old["total"] and old["total"]["status"] == "ok":
                        lp.shown(match, old["total"]["closed"])
                for provider in sorted(hidden):
                    size = sum(r["closed"] for r in of_year if r["provider_id"] == provider)
                    if size >= MIN_CELL:
                        continue
                    control_cells += 1
                    low, high = lp.bounds([a for a in atoms if a[0] == provider])
                    if high - low < MIN_CELL:
                        control_found.append((m, year, provider, size, low, high))
                        control_exact += low == high == size
    report = {
        "releases": numbers,
        "crawled": crawled,
        "small_cells_attacked": len(attacked),
        "min_width": widths[0] if widths else None,
        "median_width": widths[len(widths) // 2] if widths else None,
        "narrower_than_margin": len(narrow),
        "seconds": round(elapsed, 1),
        "control": {
            "small_cells": control_cells,
            "narrowed": len(control_found),
            "recovered_exactly": control_exact,
        },
    }
    print(f"\ndisclosure attack: {report}")
    (artifacts / "disclosure-attack.json").write_text(json.dumps(report, indent=2))
    assert crawled["rows"] > 1000 and crawled["refused"] > 100
    assert attacked, "the attacker attacked nothing"
    assert narrow == [], narrow[:5]
    # the control leaks: the same kind of attacker narrows small cells below the margin (how many it pins to
    # their exact value depends on the cohort: reported, not asserted)
    assert control_found, report


async def test_provider_pages_upload_own_figures_preview_and_right_of_reply(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    """Issue 18 item 8: a provider signs in with its key, downloads the template, uploads a CSV (every row's
    receipt in words), sees its own exact figures beside the national, previews the next release, and sends a
    correction operators see; a comment with a personnummer is refused without echoing it."""
    from ..helpers import person

    keys: Keys = data["keys"]
    provider = "hvb-eken"
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=120, follow_redirects=False) as http:
        login = await http.get("/provider")
        assert login.status_code == 200 and 'name="key"' in login.text
        # every form carries a CSRF token: without it nothing is done, not even signing in
        forged = await http.post("/provider/login", data={"key": keys["provider"]})
        assert forged.status_code == 403 and "set-cookie" not in forged.headers
        wrong = await http.post(
            "/provider/login",
            data={"key": "utf_nosuchkey_nosuchsecret", "csrf_token": form_token(login.text)},
        )
        assert wrong.status_code == 401 and 'id="login-error"' in wrong.text
        assert "utfall_provider=" not in wrong.headers.get("set-cookie", "")
        municipality = await http.post(
            "/provider/login", data={"key": keys["municipality"], "csrf_token": form_token(wrong.text)}
        )
        assert municipality.status_code == 401  # a provider key only
        signed = await http.post(
            "/provider/login", data={"key": keys["provider"], "csrf_token": form_token(municipality.text)}
        )
        assert signed.status_code == 303, signed.text
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/provider" in cookie
        page = await http.get("/provider")
        assert page.status_code == 200 and f'data-provider="{provider}"' in page.text
        token = form_token(page.text)
        # own figures exact (a provider sees its own cells even where the public sees them suppressed)
        own = (
            await http.get(
                "/v1/comparisons/planned_discharge", headers={"authorization": f"Bearer {keys['provider']}"}
            )
        ).json()
        mine = next(p for p in own["providers"] if p["provider_id"] == provider and p["source"] == "events")
        assert 'data-measure="planned_discharge" data-source="events"' in page.text
        assert f'<td class="closed">{mine["closed"]}</td>' in page.text
        # the preview: the provider's cells in the release that would be published now
        assert 'class="preview" data-measure="planned_discharge"' in page.text

        template = await http.get("/provider/template.csv")
        header, example = template.text.splitlines()
        assert header.startswith("provider_id,measure_id,measure_version,period") and example.startswith(
            provider
        )
        columns = header.split(",")
        good = {"measure_id": "no_replacement_6m", "period": "2024", "target_group": "behaviour"}
        good |= {"provider_id": provider, "measure_version": "1", "numerator": "20", "denominator": "30"}
        good |= {"missing": "2", "method": "journalgenomgång"}
        wrong = good | {"target_group": "substance_use", "numerator": "5", "denominator": "3"}  # 5 of 3
        sheet = "\n".join([header, *(",".join(row.get(c, "") for c in columns) for row in (good, wrong)), ""])
        without = await http.post("/provider/upload", files={"file": ("f.csv", sheet.encode(), "text/csv")})
        assert without.status_code == 403 and without.json()["type"].endswith("/csrf")
        sent = await http.post(
            "/provider/upload",
            files={"file": ("figures.csv", sheet.encode(), "text/csv")},
            data={"csrf_token": token},
        )
        assert sent.status_code == 200, sent.text
        assert 'data-status="accepted"' in sent.text and "Rad 2: mottagen som version" in sent.text
        assert 'data-status="rejected"' in sent.text and "Rad 3: avvisad." in sent.text
        bad = await http.post(
            "/provider/upload",
            files={"file": ("x.csv", b"nonsense,header\n1,2\n", "text/csv")},
            data={"csrf_token": token},
        )
        assert bad.status_code == 422 and 'id="sheet-error"' in bad.text

        secret = person()
        refused = await http.post(
            "/provider/comments", data={"text": f"Barnet {secret} är fel registrerat", "csrf_token": token}
        )
        assert (
            refused.status_code == 422 and 'id="comment-error"' in refused.text and secret not in refused.text
        )
        note = "Placeringen vid Eken 2024 räknas dubbelt i vårt verksamhetssystem; rätt antal är 41."
        sent = await http.post(
            "/provider/comments", data={"text": note, "measure_id": "planned_discharge", "csrf_token": token}
        )
        assert sent.status_code == 303
        page = await http.get(sent.headers["location"])
        assert 'id="comment-sent"' in page.text and note in page.text
        listed = (await http.get("/v1/releases/comments", headers=keys.headers("operator"))).json()[
            "comments"
        ]
        ours = [c for c in listed if c["text"] == note]
        assert ours and ours[0]["provider_id"] == provider and ours[0]["measure_id"] == "planned_discharge"
        assert (await http.get("/v1/releases/comments", headers=keys.headers("provider"))).status_code == 403
        (artifacts / "provider-page.html").write_text(page.text)
        out = await http.post("/provider/logout", data={"csrf_token": token})
        assert out.status_code == 303 and 'utfall_provider=""' in out.headers["set-cookie"]


async def test_settlement_statements_add_up_to_the_payments_topic(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    """Issue 19 item 1: a contract's statements, one per quarter as the contract sets, chain from opening to
    closing balance; each one's net is the signed sum of the payments.v1 messages determined in its period;
    CSV and a printable page carry the same; a provider sees only its own, another municipality nothing."""
    from utfall_events.topics import PAYMENTS
    from utfall_gateway.domain.statements import parse_period

    from ..helpers import read_topic

    keys: Keys = data["keys"]
    contract = "hvb-ungdom-stockholm"
    operator = keys.headers("operator")
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=60) as http:
        listed = (await http.get(f"/v1/contracts/{contract}/statements", headers=operator)).json()
        assert listed["period_kind"] == "quarter" and listed["statements"], listed
        on_topic = await read_topic(
            data["stack"].world.kafka, PAYMENTS, predicate=lambda r: r.key == contract.encode()
        )
        messages = [json.loads(r.value) for r in on_topic]
        assert messages
        balance = 0
        for summary in reversed(listed["statements"]):  # oldest first
            period = parse_period(summary["period"])
            assert period is not None
            inside = [
                m for m in messages if period.start <= datetime.fromisoformat(m["determined_at"]) < period.end
            ]
            signed = sum(signed_amount(m["kind"], m["amount_ore"]) for m in inside)
            assert summary["opening_balance_ore"] == balance
            assert summary["net_ore"] == signed == summary["payments_ore"] - summary["reversals_ore"]
            kinds = ("payments", "reversals", "disputes_raised", "disputes_resolved")
            assert sum(summary[k] for k in kinds) == len(inside)
            balance = summary["closing_balance_ore"]
        total = (await http.get(f"/v1/contracts/{contract}", headers=operator)).json()
        assert balance == total["paid_net_ore"] == listed["statements"][0]["cap_used_ore"]
        assert listed["statements"][0]["cap_left_ore"] == total["cap_left_ore"]

        busiest = max(listed["statements"], key=lambda s: s["payments"] + s["reversals"])["period"]
        path = f"/v1/contracts/{contract}/statements/{busiest}"
        full = (await http.get(path, headers=operator)).json()
        assert full["entries"] and all(e["evidence_event_ids"] and e["subject_ref"] for e in full["entries"])
        text = (await http.get(path, params={"format": "csv"}, headers=operator)).text
        (artifacts / f"statement-{contract}-{busiest}.csv").write_text(text)
        assert len(text.strip().splitlines()) == len(full["entries"]) + 1
        page = await http.get(path, params={"format": "html"}, headers=operator)
        assert page.headers["content-type"].startswith("text/html") and 'id="totals"' in page.text
        (artifacts / f"statement-{contract}-{busiest}.html").write_text(page.text)

        mine = (await http.get(path, headers=keys.headers("provider"))).json()
        assert mine["provider_id"] == "hvb-eken" and {e["provider_id"] for e in mine["entries"]} <= {
            "hvb-eken"
        }
        assert mine["cap_used_ore"] == full["cap_used_ore"]  # the cap is the contract's
        other = await http.get(
            f"/v1/contracts/{contract}/statements", headers=keys.headers("other_municipality")
        )
        assert other.status_code == 403
        monthly = await http.get(f"/v1/contracts/{contract}/statements/2025-03", headers=operator)
        assert monthly.status_code == 422 and monthly.json()["errors"][0]["field"] == "period"


async def test_every_demo_contract_period_is_a_valid_peppol_e_invoice_per_provider(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    """Issue 35 items 1-2: for each demo contract, each ended period and each of its providers, the statement as a
    BIS Billing 3.0 document passes the UBL 2.1 schema and OpenPeppol's Schematron with no fatal finding, and
    pays exactly the statement's net; a provider gets its own, a stranger nothing, a running period is refused.
    The stack's payments were all determined this quarter, so a gateway whose clock runs 120 days ahead (the
    same database and topics) sees their periods ended."""
    from datetime import timedelta
    from decimal import Decimal

    from lxml import etree

    from utfall_gateway.app import create_app
    from utfall_gateway.domain.einvoice import NS
    from utfall_gateway.settings import GatewaySettings
    from utfall_platform.clock import OffsetClock

    from ..helpers import running, wait_until
    from ..peppol import validator

    keys: Keys = data["keys"]
    operator = keys.headers("operator")
    world = data["stack"].world
    documents = {"Invoice": 0, "CreditNote": 0, "nothing to invoice": 0}
    later = create_app(world.settings(GatewaySettings), clock=OffsetClock(timedelta(days=120)))
    async with running(later) as http:

        async def ready() -> bool:
            return (await http.get("/v1/contracts/hvb-ungdom-stockholm", headers=operator)).status_code == 200

        await wait_until(ready, timeout=60, interval=0.5, what="the later gateway to know the keys")
        for contract in ("hvb-ungdom-stockholm", "rate-card-vastra-gotaland"):
            providers = (await http.get(f"/v1/contracts/{contract}", headers=operator)).json()["provider_ids"]
            listed = (await http.get(f"/v1/contracts/{contract}/statements", headers=operator)).json()
            assert listed["statements"], contract
            for summary in listed["statements"]:
                period = summary["period"]
                path = f"/v1/contracts/{contract}/statements/{period}/invoice.xml"
                if not summary["complete"]:
                    running_period = await http.get(
                        path, params={"provider_id": providers[0]}, headers=operator
                    )
                    assert running_period.status_code == 409, running_period.text
                    assert running_period.json()["type"].endswith("period-running")
                    continue
                for provider in providers:
                    mine = (
                        await http.get(
                            f"/v1/contracts/{contract}/statements/{period}",
                            params={"provider_id": provider},
                            headers=operator,
                        )
                    ).json()
                    answer = await http.get(path, params={"provider_id": provider}, headers=operator)
                    moved = [
                        e for e in mine["entries"] if e["kind"] in ("payment.triggered", "payment.reversed")
                    ]
                    if not moved:
                        assert answer.status_code == 404, answer.text
                        assert answer.json()["type"].endswith("nothing-to-invoice")
                        documents["nothing to invoice"] += 1
                        continue
                    assert answer.status_code == 200, answer.text
                    assert answer.headers["content-type"].startswith("application/xml")
                    report = validator().validate(answer.content)
                    assert report.schema_errors == [] and report.fatal == [], (
                        contract,
                        period,
                        provider,
                        report,
                    )
                    root = etree.fromstring(answer.content)
                    kind = etree.QName(root).localname
                    payable = Decimal(
                        root.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS) or ""
                    )
                    assert payable * 100 == abs(mine["net_ore"]), (contract, period, provider)
                    assert kind == ("CreditNote" if mine["net_ore"] < 0 else "Invoice")
                    documents[kind] += 1
                    if documents[kind] == 1:
                        (artifacts / f"einvoice-{contract}-{period}-{provider}.xml").write_bytes(
                            answer.content
                        )
                    again = await http.get(path, params={"provider_id": provider}, headers=operator)
                    assert again.content == answer.content
        assert documents["Invoice"] > 0, documents
        print(f"\ne-invoices validated over the demo contracts: {documents}")

        # a provider takes its own; another municipality sees no contract; the contract's whole is not a document
        listed = (await http.get("/v1/contracts/hvb-ungdom-stockholm/statements", headers=operator)).json()
        ended = next(s["period"] for s in listed["statements"] if s["complete"] and s["payments"])
        path = f"/v1/contracts/hvb-ungdom-stockholm/statements/{ended}/invoice.xml"
        own = await http.get(path, headers=keys.headers("provider"))
        assert own.status_code == 200, own.text
        assert b"<cbc:ID>hvb-ungdom-stockholm-" + ended.encode() + b"-hvb-eken</cbc:ID>" in own.content
        assert (await http.get(path, headers=keys.headers("other_municipality"))).status_code == 403
        whole = await http.get(path, headers=operator)
        assert whole.status_code == 422 and whole.json()["errors"][0]["field"] == "provider_id"
    # on the stack's own clock the same period is still running: no document yet
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=60) as http:
        now = await http.get(path, params={"provider_id": "hvb-eken"}, headers=operator)
    assert now.status_code == 409 and now.json()["type"].endswith("period-running"), now.text


AXE = Path(__file__).resolve().parents[1] / "browser" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]  # what EN 301 549 asks of web pages


async def _axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A and AA violations on the page as the browser has it."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA
    )
    # it really checked: the page passed rules on tables, contrast, names, language (not a vacuous run)
    passed = {rule["id"] for rule in result["passes"]}
    assert {"color-contrast", "html-has-lang", "document-title"} <= passed, sorted(passed)
    return [
        {
            "rule": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
    ]


async def test_a_finance_system_takes_the_contracts_payments_as_signed_webhooks(data) -> None:  # type: ignore[no-untyped-def]
    """Issue 35 items 3-4 over HTTP: the commissioner registers an https receiver for its contract and gets the
    secret once; every payment message of the contract then arrives signed (verified with the standardwebhooks
    library), once after deduplication, in ledger order, equal to the ledger; the endpoint and its delivery log
    are the commissioner's and operators' to read. Plain http, the other parties, and (on a gateway with the
    default settings) a loopback receiver are refused with problem details."""
    import asyncpg

    from utfall_gateway.app import create_app
    from utfall_gateway.settings import GatewaySettings

    from ..helpers import running
    from ..webhook_receiver import WebhookReceiver

    keys: Keys = data["keys"]
    world = data["stack"].world
    contract = "hvb-ungdom-stockholm"
    hooks = f"/v1/contracts/{contract}/webhooks"
    commissioner = keys.headers("municipality")
    receiver = WebhookReceiver()
    await receiver.start()

    async def ledger() -> list[Any]:
        conn = await asyncpg.connect(world.database_url)
        try:
            return list(
                await conn.fetch(
                    "SELECT payment_id || ':' || kind AS message_id, kind, amount_ore FROM contracts.ledger "
                    "WHERE contract_id = $1 ORDER BY seq",
                    contract,
                )
            )
        finally:
            await conn.close()

    try:
        async with httpx.AsyncClient(base_url=data["gateway"], timeout=60) as http:
            plain = await http.post(hooks, json={"url": "http://ekonomi.example.se/x"}, headers=commissioner)
            assert plain.status_code == 422 and "https" in plain.json()["detail"], plain.text
            for role in ("provider", "finance", "other_municipality"):
                refused = await http.post(hooks, json={"url": receiver.url}, headers=keys.headers(role))
                assert refused.status_code == 403, (role, refused.text)
            created = await http.post(
                hooks, json={"url": receiver.url, "description": "Raindance"}, headers=commissioner
            )
            assert created.status_code == 201, created.text
            assert created.headers["cache-control"] == "no-store"
            endpoint = created.json()
            assert endpoint["secret"].startswith("whsec_") and endpoint["url"] == receiver.url
            receiver.secrets.append(endpoint["secret"])

            async def delivered() -> bool:
                return len(receiver.unique()) >= len(await ledger()) > 0

            await wait_until(delivered, timeout=180, interval=0.5, what="the contract's payments delivered")
            entries = await ledger()
            unique = receiver.unique()
            assert list(unique) == [r["message_id"] for r in entries]
            assert [(d.payload["kind"], d.payload["amount_ore"]) for d in unique.values()] == [
                (r["kind"], r["amount_ore"]) for r in entries
            ]
            assert receiver.refused_signatures == 0

            listed = (await http.get(hooks, headers=keys.headers("operator"))).json()["endpoints"]
            mine = next(e for e in listed if e["endpoint_id"] == endpoint["endpoint_id"])
            assert mine["pending_messages"] == 0 and mine["delivered_messages"] >= len(entries)
            assert "secret" not in mine
            log = await http.get(
                f"{hooks}/{endpoint['endpoint_id']}/deliveries", params={"limit": 5}, headers=commissioner
            )
            assert log.status_code == 200 and len(log.json()["deliveries"]) == 5
            assert all(d["delivered"] and d["status_code"] == 204 for d in log.json()["deliveries"])
            for role in ("provider", "finance", "other_municipality"):
                assert (await http.get(hooks, headers=keys.headers(role))).status_code == 403
            # One Idempotency-Key on two endpoints is two commands; the same request again is the first one.
            second = await http.post(hooks, json={"url": receiver.url}, headers=commissioner)
            assert second.status_code == 201, second.text
            same_key = {**commissioner, "idempotency-key": "remove-1"}
            removals = [
                await http.delete(f"{hooks}/{e['endpoint_id']}", headers=same_key)
                for e in (endpoint, second.json(), endpoint)
            ]
            assert [r.status_code for r in removals] == [200, 200, 200], [r.text for r in removals]
            ids = [r.json()["command_id"] for r in removals]
            assert ids[0] != ids[1] and ids[0] == ids[2]
            listed = (await http.get(hooks, headers=commissioner)).json()["endpoints"]
            removed = {e["endpoint_id"] for e in listed if e["removed_at"]}
            assert {endpoint["endpoint_id"], second.json()["endpoint_id"]} <= removed

        # The stack allows private receivers (its tests' own); a gateway with the default settings does not.
        strict = create_app(world.settings(GatewaySettings))
        async with running(strict) as http:

            async def answered() -> httpx.Response | None:
                answer = await http.post(hooks, json={"url": receiver.url}, headers=commissioner)
                return None if answer.status_code == 401 else answer  # until it has read the keys

            answer = await wait_until(answered, timeout=60, interval=0.5, what="the strict gateway")
            assert answer.status_code == 422 and "loopback" in answer.json()["detail"], answer.text
    finally:
        await receiver.stop()


async def test_disputes_resolutions_samples_and_closing_over_http(data) -> None:  # type: ignore[no-untyped-def]
    """Issue 19 items 1 and 3 over HTTP: the contract's assessor draws a reproducible sample and disputes a
    payment (on hold), a retried request is the same command, a second dispute is refused with the reason; only
    the commissioner resolves (upheld: reversed and on payments.v1; dismissed: stands); the funder disputes too;
    the statement shows the disputes; an ended period closes once, the running one not at all."""
    from utfall_events.periods import period_of
    from utfall_events.topics import PAYMENTS

    from ..helpers import read_topic

    keys: Keys = data["keys"]
    world = data["stack"].world
    contract = "hvb-ungdom-stockholm"
    assessor = {
        "authorization": f"Bearer {await create_key(world.kafka, 'assessor', contract_ids=[contract])}"
    }
    stranger = {
        "authorization": f"Bearer {await create_key(world.kafka, 'assessor', contract_ids=['another-contract'])}"
    }
    commissioner, funder = keys.headers("municipality"), keys.headers("finance")
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=60) as http:

        async def sample(headers: dict[str, str], **params: Any) -> httpx.Response:
            return await http.get(
                f"/v1/contracts/{contract}/sample", params={"seed": "audit-2026", **params}, headers=headers
            )

        first = await sample(assessor, size=5)
        assert first.status_code == 200, first.text
        drawn = first.json()
        assert len(drawn["payments"]) == 5 and drawn["population"] >= 5
        assert all(p["evidence"] for p in drawn["payments"])
        again = (await sample(assessor, size=5, as_of_seq=drawn["as_of_seq"])).json()
        assert [p["payment_id"] for p in again["payments"]] == [p["payment_id"] for p in drawn["payments"]]
        other_seed = (await sample(assessor, size=5, seed="another", as_of_seq=drawn["as_of_seq"])).json()
        assert other_seed["payments"] != drawn["payments"]
        assert (await sample(stranger, size=5)).status_code == 403
        assert (await sample(keys.headers("provider"), size=5)).status_code == 403

        upheld, dismissed, by_funder = (p["payment_id"] for p in drawn["payments"][:3])
        url = f"/v1/contracts/{contract}/payments/{{}}/dispute"
        reason = {"reason": "the discharge plan in the evidence is not signed"}
        for who in (keys.headers("provider"), commissioner, stranger, keys.headers("other_finance")):
            assert (await http.post(url.format(upheld), json=reason, headers=who)).status_code == 403
        retry = {**assessor, "idempotency-key": "case-17"}
        opened = await http.post(url.format(upheld), json=reason, headers=retry)
        assert opened.status_code == 201, opened.text
        assert opened.json()["outcome"] == "applied"
        repeated = await http.post(url.format(upheld), json=reason, headers=retry)
        assert repeated.status_code == 201 and repeated.json()["command_id"] == opened.json()["command_id"]
        twice = await http.post(url.format(upheld), json=reason, headers=assessor)
        assert twice.status_code == 409 and "already disputed" in twice.json()["detail"], twice.text
        assert twice.headers["content-type"].startswith("application/problem+json")
        assert (await http.post(url.format(dismissed), json=reason, headers=assessor)).status_code == 201
        assert (await http.post(url.format(by_funder), json=reason, headers=funder)).status_code == 201
        personal = await http.post(
            url.format(by_funder), json={"reason": "see 19121212-1212"}, headers=funder
        )
        assert personal.status_code == 422 and "19121212" not in personal.text
        unknown = await http.post(
            url.format("00000000-0000-4000-8000-000000000000"), json=reason, headers=assessor
        )
        assert unknown.status_code == 404

        disputes = (await http.get(f"/v1/contracts/{contract}/disputes", headers=assessor)).json()
        on_hold = {d["payment_id"]: d for d in disputes["disputes"]}
        assert {upheld, dismissed, by_funder} <= set(on_hold)
        assert disputes["on_hold_ore"] >= sum(
            on_hold[p]["amount_ore"] for p in (upheld, dismissed, by_funder)
        )

        resolve = f"/v1/contracts/{contract}/payments/{{}}/dispute/resolution"
        for who in (assessor, funder, keys.headers("other_municipality"), keys.headers("operator")):
            decided = await http.post(
                resolve.format(upheld), json={"resolution": "upheld", "reason": "no plan"}, headers=who
            )
            assert decided.status_code == 403, decided.text
        answer = await http.post(
            resolve.format(upheld),
            json={"resolution": "upheld", "reason": "the minutes show no plan"},
            headers=commissioner,
        )
        assert answer.status_code == 201 and answer.json()["ledger_entries"] == 2, answer.text
        answer = await http.post(
            resolve.format(dismissed),
            json={"resolution": "dismissed", "reason": "the plan was signed"},
            headers=commissioner,
        )
        assert answer.status_code == 201 and answer.json()["ledger_entries"] == 1, answer.text
        again_resolved = await http.post(
            resolve.format(dismissed),
            json={"resolution": "upheld", "reason": "second thoughts"},
            headers=commissioner,
        )
        assert again_resolved.status_code == 409 and "already dismissed" in again_resolved.json()["detail"]

        ledger = (await http.get(f"/v1/contracts/{contract}/payments?limit=1000", headers=funder)).json()[
            "payments"
        ]
        mine = [(p["payment_id"], p["kind"]) for p in ledger if p["payment_id"] in (upheld, dismissed)]
        assert mine.count((upheld, "payment.reversed")) == 1 and (dismissed, "payment.reversed") not in mine
        reversal = next(p for p in ledger if p["payment_id"] == upheld and p["kind"] == "payment.reversed")
        assert "upheld" in reversal["reason"] and "the minutes show no plan" in reversal["reason"]
        on_topic = await read_topic(
            world.kafka,
            PAYMENTS,
            predicate=lambda r: (
                r.key == contract.encode() and json.loads(r.value)["payment_id"] in (upheld, dismissed)
            ),
            expect=7,
            timeout=60,
            settle=1.0,
        )
        assert Counter(json.loads(r.value)["kind"] for r in on_topic) == {
            "payment.triggered": 2,
            "payment.disputed": 2,
            "payment.dispute_resolved": 2,
            "payment.reversed": 1,
        }

        now = datetime.now(UTC)
        running = period_of(now, "quarter")
        statement = (
            await http.get(f"/v1/contracts/{contract}/statements/{running.label}", headers=funder)
        ).json()
        assert statement["disputes_raised"] >= 3 and statement["disputes_resolved"] >= 2
        assert statement["closed"] is None
        page = await http.get(
            f"/v1/contracts/{contract}/statements/{running.label}?format=html", headers=funder
        )
        assert "bestriden / disputed" in page.text
        close = f"/v1/contracts/{contract}/statements/{{}}/close"
        assert (await http.post(close.format(running.label), headers=funder)).status_code == 403
        not_ended = await http.post(close.format(running.label), headers=commissioner)
        assert not_ended.status_code == 409 and "has not ended" in not_ended.json()["detail"]
        ended = period_of(running.start - timedelta(days=1), "quarter").label
        closed = await http.post(close.format(ended), headers=commissioner)
        assert closed.status_code == 201, closed.text
        assert (await http.post(close.format(ended), headers=commissioner)).status_code == 409
        past = (await http.get(f"/v1/contracts/{contract}/statements/{ended}", headers=funder)).json()
        assert past["closed"] is not None
        assert past["closed"]["contract_closing_balance_ore"] == past["closing_balance_ore"]


async def test_forecast_contract_page_and_indigo_export_of_the_hvb_contract(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    """Issue 19 items 2 and 5 on the real stack, for the HVB example contract: the forecast (maximum at least
    the expected, both within the cap left, the planned periods adding up to the expected), the contract's page
    in Chromium-free HTML, and the INDIGO export valid against the schema of the fields we emit, its Actual
    payments adding up to the ledger. The three documents are kept under tests/artifacts for the team."""
    from importlib import resources

    import jsonschema

    from utfall_gateway.web.rendering import kronor

    keys: Keys = data["keys"]
    contract = "hvb-ungdom-stockholm"
    funder = keys.headers("finance")
    schema = json.loads(
        Path(str(resources.files("utfall_gateway").joinpath("indigo_project_subset.schema.json"))).read_text()
    )
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=60) as http:
        assert (
            await http.get(f"/v1/contracts/{contract}/forecast", headers=keys.headers("provider"))
        ).status_code == 403
        assert (
            await http.get(f"/v1/contracts/{contract}/forecast", headers=keys.headers("other_finance"))
        ).status_code == 403
        forecast = (await http.get(f"/v1/contracts/{contract}/forecast", headers=funder)).json()
        summary = (await http.get(f"/v1/contracts/{contract}", headers=funder)).json()
        assert forecast["paid_net_ore"] == summary["paid_net_ore"]
        assert forecast["open_milestones"] > 0
        assert 0 < forecast["expected_ore"] <= forecast["maximum_ore"] <= forecast["cap_left_ore"]
        planned = sum(p["planned_ore"] or 0 for p in forecast["periods"])
        assert planned == forecast["expected_ore"]  # to the öre
        assert forecast["paid_net_ore"] + planned <= forecast["total_cap_ore"]
        assert {p["type"] for p in forecast["periods"]} >= {"Actual and planned", "Planned"}
        page = await http.get(f"/v1/contracts/{contract}/forecast?format=html", headers=funder)
        assert page.status_code == 200 and "Förväntat kvar att betala" in page.text
        assert kronor(forecast["expected_ore"]) in page.text

        export = await http.get(f"/v1/contracts/{contract}/indigo", headers=keys.headers("municipality"))
        assert export.status_code == 200, export.text
        document = export.json()
        jsonschema.validate(document, schema)
        actual = sum(
            p["money"]["amount"]["value"]
            for p in document["outcome_payments"]
            if p["type"]["value"] == "Actual"
        )
        assert round(actual * 100) == summary["paid_net_ore"]
        assert {p["type"]["value"] for p in document["outcome_payments"]} == {"Planned", "Actual"}
        statements = (await http.get(f"/v1/contracts/{contract}/statements", headers=funder)).json()
        statement = (
            await http.get(
                f"/v1/contracts/{contract}/statements/{statements['statements'][0]['period']}", headers=funder
            )
        ).json()
    for name, body in (("statement", statement), ("forecast", forecast), ("indigo", document)):
        (artifacts / f"hvb-{name}.json").write_text(json.dumps(body, indent=1, ensure_ascii=False))


async def test_the_register_finds_the_provider_whose_reports_it_contradicts(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    """Issue 31: the register extract the fixture sent contradicts hvb-granen's school answers and holds
    re-placements its follow-ups did not mention; its agreement is the lowest, every disagreement is its own,
    each provider sees only its own, and nobody without a key sees any."""
    keys = data["keys"]
    async with httpx.AsyncClient(base_url=data["gateway"], timeout=60) as http:

        async def settled() -> dict[str, Any] | None:
            body = (
                await http.get(
                    "/v1/measures/education_or_work_12m/agreement", headers=keys.headers("operator")
                )
            ).json()
            compared = {p["provider_id"]: p["compared"] for p in body["providers"]}
            return body if compared.get("hvb-granen", 0) >= 10 and len(compared) >= 8 else None

        body = await wait_until(settled, timeout=120, interval=1.0, what="verified facts of the register")
        demo = {p.provider_id for p in PROVIDERS}
        shares = {
            p["provider_id"]: p["share"]
            for p in body["providers"]
            if p["provider_id"] in demo and p["compared"] >= 10
        }
        assert min(shares, key=lambda p: shares[p]) == "hvb-granen" and shares["hvb-granen"] < 0.9, shares
        assert all(s >= 0.95 for p, s in shares.items() if p != "hvb-granen"), shares
        granen = [d for d in body["disagreements"] if d["provider_id"] == "hvb-granen"]
        assert granen and all(
            (d["reported_status"], d["verified_status"]) == ("achieved", "not_achieved") for d in granen
        )
        interval = next(p for p in body["providers"] if p["provider_id"] == "hvb-granen")["interval"]
        assert interval["low"] < shares["hvb-granen"] < interval["high"]
        own = (
            await http.get("/v1/measures/no_replacement_12m/agreement", headers=keys.headers("provider"))
        ).json()
        assert {p["provider_id"] for p in own["providers"]} == {"hvb-eken"}
        assert {d["provider_id"] for d in own["disagreements"]} <= {"hvb-eken"}
        for who, status in (("public", 401), ("municipality", 403), ("finance", 403)):
            answer = await http.get("/v1/measures/no_replacement_12m/agreement", headers=keys.headers(who))
            assert answer.status_code == status, who
        page = await http.get(
            "/v1/measures/education_or_work_12m/agreement",
            params={"format": "html"},
            headers=keys.headers("operator"),
        )
        assert page.status_code == 200 and 'id="agreement-chart"' in page.text
        drawn = re.findall(r'<g class="row" data-provider="([^"]+)" data-share="([0-9.]+)"', page.text)
        order = [p for p, _ in drawn if p in shares]
        assert order[0] == "hvb-granen" and len(order) == len(shares)  # lowest first: what needs a look
        # the same finding among the signals, beside the others, for an operator and for the contract's assessor
        signals = (await http.get("/v1/signals", headers=keys.headers("operator"))).json()
        disagreement = {
            p["provider_id"]: next(v for v in p["signals"] if v["id"] == "register_disagreement_share")
            for p in signals["providers"]
            if p["provider_id"] in shares
        }
        assert max(disagreement, key=lambda p: disagreement[p]["value"] or 0) == "hvb-granen", disagreement
        lag = next(
            v
            for p in signals["providers"]
            if p["provider_id"] == "hvb-eken"
            for v in p["signals"]
            if v["id"] == "reporting_lag_days"
        )
        assert lag["n"] > 100 and lag["low"] <= lag["value"] <= lag["high"] and lag["national"] is not None
        # signals of a change: the provider's latest discharge year against its own earlier years
        planned = next(
            v
            for p in signals["providers"]
            if p["provider_id"] == "hvb-eken"
            for v in p["signals"]
            if v["id"] == "planned_discharges_share"
        )
        assert planned["n"] > 0 and planned["year"] is not None and planned["history"] is not None
        assert planned["low"] <= planned["value"] <= planned["high"]
        assert {d["id"]: d["compared_with"] for d in signals["definitions"]}[
            "followups_near_deadline_share"
        ] == "own_history"
        page = await http.get(
            "/v1/signals", params={"format": "html", "lang": "en"}, headers=keys.headers("operator")
        )
        assert page.status_code == 200 and page.text.count("<table data-signal=") == len(
            signals["definitions"]
        )
        assessor = await create_key(
            data["stack"].world.kafka, "assessor", contract_ids=["hvb-ungdom-stockholm"]
        )

        async def assessor_signals() -> dict[str, Any] | None:
            answer = await http.get("/v1/signals", headers={"authorization": f"Bearer {assessor}"})
            return answer.json() if answer.status_code == 200 else None  # until the gateway knows the key

        seen = await wait_until(assessor_signals, timeout=30, interval=0.5, what="the assessor's key")
        contract = (
            await http.get("/v1/contracts/hvb-ungdom-stockholm", headers=keys.headers("operator"))
        ).json()
        assert seen["providers"] and {p["provider_id"] for p in seen["providers"]} <= set(
            contract["provider_ids"]
        )
        # the assessor's sample weighted by the signals: reproducible by seed, hvb-granen weighted up
        sample_path = "/v1/contracts/hvb-ungdom-stockholm/sample"
        params = {"seed": "kontroll-2026", "size": 30, "weighting": "signals"}
        first = await http.get(sample_path, params=params, headers={"authorization": f"Bearer {assessor}"})
        again = await http.get(
            sample_path,
            params={**params, "as_of_seq": first.json()["as_of_seq"]},
            headers={"authorization": f"Bearer {assessor}"},
        )
        assert first.status_code == 200 and first.json()["payments"] == again.json()["payments"]
        weights = first.json()["provider_weights"]
        # every provider of the population weighed (1 unless a signal's interval lies above the national; how
        # the weights draw is unit-tested), and the sample drawn from the contract's providers only
        assert set(weights) <= set(contract["provider_ids"]) and all(
            1.0 <= w <= 5.0 for w in weights.values()
        )
        assert {p["provider_id"] for p in first.json()["payments"]} <= set(weights)
    (artifacts / "register-agreement.json").write_text(
        json.dumps({"education_or_work_12m": shares, "register_disagreement_share": disagreement}, indent=2)
    )


async def test_pages_meet_wcag_21_aa_by_axe_core_and_work_by_keyboard(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    """Issue 18 item 7: every public page, in both languages, live and released, has no WCAG 2.1 A/AA
    violation axe-core (npm, the real library) can find in Chromium; the page works with the keyboard alone."""
    from playwright.async_api import async_playwright

    assert AXE.exists(), "axe-core is installed by scripts/bootstrap.sh (npm ci --prefix tests/browser)"
    chromium = _chromium()
    assert chromium, "Debian's chromium is needed (scripts/bootstrap.sh --system installs it)"
    gateway = data["gateway"]
    pages = [
        "/",
        "/?lang=en",
        "/?release=1&measure=no_replacement_24m&year=",
        "/?release=1&measure=no_replacement_6m&lang=en",
        "/measures/no_replacement_6m",
        "/measures/no_replacement_24m?lang=en",
        "/?measure=education_or_work_12m@register",  # a verified measure, in its own words
        "/accessibility",
        "/accessibility?lang=en",
    ]
    found: dict[str, list[dict[str, Any]]] = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(bypass_csp=True, viewport={"width": 1100, "height": 900})
        page = await context.new_page()
        for path in pages:
            await page.goto(gateway + path)
            found[path] = await _axe(page)
            if path == "/":  # the latest release, as the public sees it by default
                await page.screenshot(path=str(artifacts / "release-page.png"), full_page=True)
            if "@register" in path:
                header = await page.locator("#results thead").inner_text()
                assert "Uteslutna" in header and "Ej verifierade" in header, header
        # the providers' pages: signing in, and the signed-in page with its forms and tables
        await page.goto(gateway + "/provider")
        found["/provider (sign in)"] = await _axe(page)
        await page.fill("#key", data["keys"]["provider"])
        async with page.expect_navigation():
            await page.click("#login button[type=submit]")
        assert await page.locator("#own").count() == 1
        found["/provider"] = await _axe(page)
        await page.screenshot(path=str(artifacts / "provider-page.png"), full_page=True)
        assert await page.locator("#verified").count() == 1  # its outcomes against the register
        # the operator's agreement page (the operator's key on every request of its own context)
        operator = await browser.new_context(
            bypass_csp=True,
            viewport={"width": 1100, "height": 900},
            extra_http_headers=data["keys"].headers("operator"),
        )
        operator_page = await operator.new_page()
        for path in (
            "/v1/measures/education_or_work_12m/agreement?format=html",
            "/v1/measures/no_replacement_12m/agreement?format=html&lang=en",
        ):
            await operator_page.goto(gateway + path)
            assert await operator_page.locator("#agreement-chart g.row").count() >= 5
            found[path] = await _axe(operator_page)
        await operator_page.screenshot(path=str(artifacts / "agreement-page.png"), full_page=True)
        for path in ("/v1/signals?format=html", "/v1/signals?format=html&lang=en"):
            await operator_page.goto(gateway + path)
            assert await operator_page.locator("table[data-signal] tbody tr").count() >= 5
            found[path] = await _axe(operator_page)
        await operator_page.screenshot(path=str(artifacts / "signals-page.png"), full_page=True)
        # the audit trail's page: the operator's own reads just now are among its entries, and filtering by
        # the key keeps them (and nobody else's)
        for path in ("/v1/audit?format=html&limit=50", "/v1/audit?format=html&lang=en&limit=50"):
            await operator_page.goto(gateway + path)
            assert await operator_page.locator("#filters").count() == 1
            assert await operator_page.locator("#entries tbody tr").count() >= 1
            found[path] = await _axe(operator_page)
        actor = await operator_page.locator("#entries tbody tr").last.get_attribute("data-actor")
        await operator_page.fill("#actor", actor or "")
        async with operator_page.expect_navigation():
            await operator_page.click("#filters button[type=submit]")
        actors = set(
            await operator_page.locator("#entries tbody tr").evaluate_all(
                "rs => rs.map(r => r.dataset.actor)"
            )
        )
        assert actors == {actor}, actors
        assert "actor=" in (await operator_page.locator("#export-csv").get_attribute("href") or "")
        await operator_page.screenshot(path=str(artifacts / "audit-page.png"), full_page=True)
        await operator.close()
        await page.goto(gateway + "/accessibility?lang=en")
        await page.screenshot(path=str(artifacts / "accessibility-statement.png"), full_page=True)
        assert "partially compliant" in await page.locator("#status").inner_text()

        # the keyboard alone: skip to the content, choose a measure, show it
        await page.goto(gateway + "/?release=1")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip"
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main"
        before = await page.locator("#measure").input_value()
        for _ in range(10):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.id") == "measure":
                break
        assert await page.evaluate("document.activeElement.id") == "measure"
        await page.keyboard.press(
            "ArrowUp"
            if before != await page.locator("#measure option").first.get_attribute("value")
            else "ArrowDown"
        )
        chosen = await page.locator("#measure").input_value()
        assert chosen != before
        for _ in range(10):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.tagName") == "BUTTON":
                break
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert await page.locator("#measure").input_value() == chosen
        await browser.close()
    (artifacts / "axe-violations.json").write_text(json.dumps(found, indent=2))
    assert all(not v for v in found.values()), {k: v for k, v in found.items() if v}


async def test_finance_pages_fit_a_window_a_phone_and_an_a4_sheet_and_meet_wcag(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    """Issue 35 item 5 in Chromium: the printable statement and the contract's page fit a 1,280 px window (the
    reason column included), a 375 px phone (the entries scroll in a region of their own, the page does not)
    and an A4 sheet in print; amounts are grouped by thousands with one minus sign, times say they are Swedish
    time, the commissioner and the funder appear by name, a reversal's reason reads as words; axe-core finds
    no WCAG 2.1 A/AA violation at either width."""
    import re

    from playwright.async_api import async_playwright

    from utfall_events.periods import period_of

    chromium = _chromium()
    assert chromium and AXE.exists()
    contract = "hvb-ungdom-stockholm"
    running = period_of(datetime.now(UTC), "quarter").label
    pages = {
        "statement": f"/v1/contracts/{contract}/statements/{running}?format=html",
        "contract": f"/v1/contracts/{contract}/forecast?format=html",
    }
    amount = re.compile(r"^\u2212?\d{1,3}(\u00a0\d{3})*,\d{2}$")
    a4_printable_px = round((210 - 2 * 12) / 25.4 * 96)  # A4 less the 12 mm margins of the print style
    found: dict[str, list[dict[str, Any]]] = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(
            bypass_csp=True, extra_http_headers=data["keys"].headers("operator")
        )
        page = await context.new_page()
        for name, path in pages.items():
            for width in (1280, 375):
                await page.set_viewport_size({"width": width, "height": 900})
                await page.emulate_media(media="screen")
                await page.goto(data["gateway"] + path)
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, (name, width, overflow)
                if width == 1280:
                    right = await page.evaluate(
                        "Math.max(...[...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right))"
                    )
                    assert right <= width, (name, right)
                found[f"{name} at {width} px"] = await _axe(page)
                await page.screenshot(path=str(artifacts / f"{name}-page-{width}.png"), full_page=True)
            await page.emulate_media(media="print")
            await page.set_viewport_size({"width": a4_printable_px, "height": 1000})
            await page.goto(data["gateway"] + path)
            printed = await page.evaluate(
                "Math.max(document.documentElement.scrollWidth, "
                "...[...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right))"
            )
            assert printed <= a4_printable_px, (name, printed, a4_printable_px)
            await page.pdf(path=str(artifacts / f"{name}-page-a4.pdf"), format="A4")
            cells = await page.locator(
                "td.amount, #totals td:not(.cap-used), #liability td.paid, #liability td.cap-left"
            ).all_inner_texts()
            assert cells and all(amount.match(c.strip()) for c in cells), [
                c for c in cells if not amount.match(c.strip())
            ][:5]
            text = await page.locator("main").inner_text()
            assert "Stockholms kommun" in text and "Stiftelsen Sociala Investeringar" in text
            assert "; after:" not in text and "-0," not in text
            if name == "statement":
                assert "svensk tid / Swedish time" in text
                assert await page.locator("#entries tbody tr").count() > 0
        await browser.close()
    (artifacts / "axe-violations-finance-pages.json").write_text(json.dumps(found, indent=2))
    assert all(not v for v in found.values()), {k: v for k, v in found.items() if v}


# Checks left out, and why: `positive_data_acceptance` expects a 2xx for every schema-valid request, but some
# rules cannot be written in JSON Schema (a Luhn check digit, a registered provider, a known municipality) and
# answer 422 by design; `ignored_auth` and `use_after_free`/`ensure_resource_availability` are covered by the
# role matrix above and by the stateful flows these endpoints do not link.
EXCLUDED_CHECKS = "positive_data_acceptance,ignored_auth,use_after_free,ensure_resource_availability"


async def test_schemathesis_on_both_apis_then_the_stack_still_works(data, artifacts) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 item 6: schemathesis over the gateway (public, operator: admin endpoints included) and ingest
    (a provider key), every other check; afterwards every service is ready and a valid event still becomes a
    payment."""
    keys: Keys = data["keys"]
    st = shutil.which("schemathesis", path=os.path.dirname(sys.executable)) or "schemathesis"
    runs = [
        ("gateway-public", data["gateway"], None),
        ("gateway-operator", data["gateway"], keys["operator"]),
        ("ingest-provider", data["ingest"], data["provider_keys"]["hvb-linden"]),
    ]
    for name, url, key in runs:
        args = [
            st,
            "run",
            url + "/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED_CHECKS,
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--phases",
            "examples,coverage,fuzzing",
            # one worker: with two threads, CPython 3.11's ast module can fail inside Hypothesis with "AST
            # constructor recursion depth mismatch" (python/cpython#106905), an error of the tool, not of ours
            "--workers",
            "1",
            "--no-color",
        ]
        if key is not None:
            args += ["-H", f"Authorization: Bearer {key}"]
        if name == "gateway-operator":
            # each accepted call reads and publishes a whole release (seconds); its own test covers it
            args += ["--exclude-name", "POST /v1/releases"]
        result = await asyncio.get_running_loop().run_in_executor(
            None, lambda a=args: subprocess.run(a, capture_output=True, text=True, timeout=600)
        )
        (artifacts / f"schemathesis-{name}.txt").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, (name, result.stdout[-4000:])

    stack = data["stack"]
    async with httpx.AsyncClient(timeout=30) as http:
        for service in ("ingest", "measures", "contracts", "gateway"):
            ready = await http.get(stack.services[service].url + "/ready")
            assert ready.status_code == 200, (service, ready.text)
    await _a_valid_event_still_becomes_a_payment(stack)


async def _a_valid_event_still_becomes_a_payment(stack: Any) -> None:
    from ..helpers import ended, person, started, uid

    provider = "hvb-granen"
    provider_key = await create_key(stack.world.kafka, "provider", provider_id=provider)
    # a key of its own: the fuzzer holds the operator's key and may revoke any key, its own among them, through
    # DELETE /v1/admin/keys (it reads their ids from GET /v1/admin/keys), as an operator may
    operator = {"authorization": f"Bearer {await create_key(stack.world.kafka, 'operator')}"}
    contract_id = uid("after-fuzz-")
    contract = {
        "contract_id": contract_id,
        "name": "Efter fuzzning",
        "commissioner_municipality": "0180",
        "funder": "fund",
        "provider_ids": [provider],
        "cohort": {"care_types": ["hvb"], "enrolment_from": "2024-01-01", "enrolment_to": "2025-12-31"},
        "milestones": [{"milestone_id": "m1", "measure_id": "planned_discharge", "price_ore": 12_345}],
        "per_participant_cap_ore": 12_345,
        "total_cap_ore": 1_000_000,
    }
    episode = uid("ep-")
    gateway, ingest = stack.services["gateway"].url, stack.services["ingest"].url
    async with httpx.AsyncClient(timeout=30) as http:
        sent = await http.post(gateway + "/v1/admin/contracts", json=contract, headers=operator)
        assert sent.status_code == 202, sent.text
        events = [
            started(provider, episode, person(), start="2024-03-01", unit="granen-1"),
            ended(provider, episode, end="2024-09-01", reason="planned"),
        ]
        posted = await http.post(
            ingest + "/v1/events",
            content=json.dumps(events),
            headers={
                "content-type": "application/cloudevents-batch+json",
                "authorization": f"Bearer {provider_key}",
            },
        )
        assert posted.status_code == 202 and posted.json()["accepted"] == 2, posted.text

        async def paid() -> bool:
            answer = await http.get(gateway + f"/v1/contracts/{contract_id}/payments", headers=operator)
            return answer.status_code == 200 and any(
                p["amount_ore"] == 12_345 for p in answer.json().get("payments", [])
            )

        await wait_until(paid, timeout=90, interval=1.0, what="the payment after fuzzing")
