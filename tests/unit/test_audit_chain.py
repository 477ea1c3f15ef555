"""The audit trail's rules, pure: entries chain, any change, removal or reordering breaks the chain at that
entry, retention cuts whole months and leaves an anchor from which the rest still verifies."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utfall_gateway.audit_trail import count_rows
from utfall_gateway.domain.audit import (
    GENESIS,
    AuditFacts,
    ChainHead,
    append,
    link,
    month_start,
    retention_cutoff,
    verify,
)
from utfall_gateway.routes.audit import Matching

START = datetime(2026, 1, 1, tzinfo=UTC)


def facts(i: int, **change: object) -> AuditFacts:
    base = AuditFacts(
        at=START + timedelta(minutes=i),
        actor=f"person:p{i % 3}",
        actor_name="Maja Ek",
        role="municipality",
        scope={"municipality_code": "0180"},
        method="GET",
        route="/v1/contracts/{contract_id}/participants",
        path=f"/v1/contracts/c/participants?n={i}",
        contract_id="c",
        provider_id=None,
        period=None,
        rows=i,
        client="10.0.0.1",
        outcome=200,
    )
    return replace(base, **change)  # type: ignore[arg-type]


def chain(n: int) -> list:  # type: ignore[type-arg]
    entries, _ = append(ChainHead(0, GENESIS), "gw", [facts(i) for i in range(n)])
    return entries


@given(st.integers(min_value=1, max_value=40), st.data())
@settings(max_examples=60)
def test_any_change_removal_or_swap_breaks_the_chain_at_that_entry(n: int, data: st.DataObject) -> None:
    entries = chain(n)
    assert verify("gw", entries) is None
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    field = data.draw(st.sampled_from(["rows", "actor", "outcome", "path", "at", "scope"]))
    changed_value = {
        "rows": 10_000,
        "actor": "key:someone-else",
        "outcome": 403,
        "path": "/elsewhere",
        "at": START - timedelta(days=1),
        "scope": {"municipality_code": "2584"},
    }[field]
    changed = list(entries)
    changed[i] = replace(entries[i], facts=replace(entries[i].facts, **{field: changed_value}))
    found = verify("gw", changed)
    assert found is not None and found.seq == i + 1 and "changed" in found.reason
    removed = entries[:i] + entries[i + 1 :]
    if i < n - 1:  # the last entry's removal leaves a shorter chain that verifies (see docs: the tail)
        found = verify("gw", removed)
        assert found is not None and found.seq == i + 1 and "missing" in found.reason
    if n > 1 and i < n - 1:
        swapped = list(entries)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        assert verify("gw", swapped) is not None


def test_a_chain_continues_across_batches_and_from_an_anchor_after_retention() -> None:
    first, head = append(ChainHead(0, GENESIS), "gw", [facts(i) for i in range(5)])
    second, head = append(head, "gw", [facts(i) for i in range(5, 9)])
    assert verify("gw", first + second) is None and head.seq == 9
    anchor = ChainHead(first[-1].seq, first[-1].hash)
    assert verify("gw", second, anchor) is None
    assert verify("gw", second) is not None  # without its anchor the rest does not start at the beginning
    assert verify("gw", second[1:], anchor) is not None  # a gap after the anchor is found


def test_retention_cuts_whole_months() -> None:
    now = datetime(2026, 12, 5, 13, 0, tzinfo=UTC)
    assert month_start(now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert retention_cutoff(now, 36) == datetime(2023, 12, 1, tzinfo=UTC)
    assert retention_cutoff(now, 0) == datetime(2026, 12, 1, tzinfo=UTC)
    assert retention_cutoff(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2025, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("content_type", "body", "rows"),
    [
        ("application/json", b'{"contract_id": "c", "participants": [1, 2, 3]}', 3),
        ("application/json", b"[1, 2]", 2),
        ("application/json", b'{"contract_id": "c"}', 1),
        ("application/problem+json", b'{"status": 403, "errors": []}', 0),
        ("text/csv; charset=utf-8", b"a,b\n1,2\n3,4\n", 2),
        ("text/html; charset=utf-8", b"<html></html>", None),
        ("application/json", b"", None),
    ],
)
def test_rows_are_counted_from_the_answer(content_type: str, body: bytes, rows: int | None) -> None:
    assert count_rows(content_type, body) == rows


def test_json_answers_count_their_rows_for_the_trail_and_the_mark_is_theirs() -> None:
    from utfall_gateway.audit_trail import ROWS_HEADER, CountedJSONResponse

    answer = CountedJSONResponse({"contract_id": "c", "payments": [{"a": 1}, {"a": 2}], "entries": [{}]})
    assert (ROWS_HEADER, b"3") in answer.raw_headers
    assert (ROWS_HEADER, b"2") in CountedJSONResponse([1, 2]).raw_headers


def test_what_a_caller_sent_is_stored_as_postgresql_text_can_hold_it() -> None:
    from utfall_gateway.audit_trail import storable

    assert storable("a\x00b") == "a\\x00b"
    assert storable("\udc80x") == "\\udc80x"
    assert storable("x" * 500) == "x" * 200 and storable(None) is None


def test_a_reader_far_above_its_own_usual_is_unusual_and_the_gauge_says_so() -> None:
    from utfall_gateway.audit_trail import AUDIT_UNUSUAL_READERS, ReaderWatch

    watch = ReaderWatch()
    for window in range(4):  # four windows of 100 rows each: its usual
        for i in range(10):
            watch.saw(facts(0, at=START + timedelta(minutes=10 * window, seconds=i), actor="key:k", rows=10))
    watch.saw(facts(0, at=START + timedelta(minutes=40), actor="key:k", rows=5_000))
    watch.saw(facts(0, at=START + timedelta(minutes=40, seconds=1), actor="key:other", rows=400))
    watch.publish()
    assert set(watch.unusual()) == {"key:k"}  # the other is new but under the floor of 500 rows
    assert AUDIT_UNUSUAL_READERS._value.get() == 1


def test_an_entrys_hash_covers_its_canonical_form_which_never_changes() -> None:
    """Chains written by earlier releases must still verify: the canonical JSON (sorted keys, ASCII escapes,
    UTC microseconds) and so this hash are fixed."""
    entry = link("gw@h:1", 1, facts(1, actor_name="Åsa Öberg"), GENESIS)
    assert entry.hash.hex() == "c064b4f7f41018ff93ab7824e5747e780ed5003ee6cbfaf8714b6068fbf38bcb"


def test_the_operators_page_shows_the_entries_with_their_filters_kept_in_every_link() -> None:
    from utfall_gateway.audit_store import AuditFilter
    from utfall_gateway.audit_trail import entry_out
    from utfall_gateway.routes.audit import AuditEntryOut, AuditPageOut, audit_page

    entries, _ = append(ChainHead(0, GENESIS), "gw@h:1", [facts(i) for i in range(3)])
    answer = AuditPageOut(items=[AuditEntryOut(**entry_out(e)) for e in entries], next_cursor="abc")
    chosen = AuditFilter(actor="person:p1", provider_id=None, contract_id="c", since=START, until=None)
    for lang, heading in (("sv", "Granskningsloggen"), ("en", "The audit trail")):
        html = audit_page(answer, chosen, limit=3, lang=lang).body.decode()
        assert f"<h1>{heading}</h1>" in html and f'<html lang="{lang}">' in html
        assert html.count('<tr data-actor="person:p') == 3 and "Maja Ek" in html
        assert 'value="person:p1"' in html and 'value="c"' in html  # the form shows the filter
        # to the second, on Sweden's clock (UTC+1 in January)
        assert '<time datetime="2026-01-01T00:01:00+00:00">2026-01-01 01:01:00</time>' in html
        since = "since=2026-01-01T00%3A00%3A00%2B00%3A00"
        assert (
            f'href="/v1/audit/export?actor=person%3Ap1&amp;contract_id=c&amp;{since}&amp;format=csv"' in html
        )
        assert "cursor=abc" in html and f"lang={lang}" in html
    empty = audit_page(AuditPageOut(items=[], next_cursor=None), AuditFilter(), limit=100, lang="en")
    assert 'id="empty"' in empty.body.decode() and 'id="next"' not in empty.body.decode()
    assert empty.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("since=&until=&actor=&provider_id=&contract_id=", 200),  # the page's form, nothing filled in
        ("since=2026-12-05T10:00:00%2B01:00", 200),
        ("since=0", 422),
        ("until=1700000000", 422),
        ("until=2026-12-05T10:00:00", 422),  # no offset
        ("actor=%00x", 422),
    ],
)
def test_the_trails_filters_take_iso_times_with_offsets_and_empty_fields_as_no_filter(
    query: str, status: int
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from utfall_gateway.audit_store import AuditFilter

    app = FastAPI()

    @app.get("/f")
    def echo(f: Matching) -> dict[str, object]:
        assert isinstance(f, AuditFilter)
        return {"since": f.since.isoformat() if f.since else None, "actor": f.actor}

    answer = TestClient(app).get(f"/f?{query}")
    assert answer.status_code == status, answer.text
    if query.startswith("since=&"):
        assert answer.json() == {"since": None, "actor": None}


def test_a_stylesheet_fetched_with_a_session_cookie_is_not_an_entry_but_a_refused_read_is() -> None:
    from utfall_gateway.audit_trail import _facts

    cookie = [(b"cookie", b"utfall_session=abc")]
    start = {"type": "http.response.start", "status": 200, "headers": []}
    now = datetime(2026, 12, 5, tzinfo=UTC)
    static = {"type": "http", "method": "GET", "path": "/static/utfall.css", "headers": cookie}
    assert _facts(static, start, b"body{}", now) is None
    read = {"type": "http", "method": "GET", "path": "/v1/signals", "headers": cookie, "query_string": b""}
    refused = _facts(read, {**start, "status": 401}, b"{}", now)
    assert refused is not None and refused.actor == "unauthenticated" and refused.outcome == 401
