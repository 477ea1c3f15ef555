"""Settlement statements: periods in Swedish time, totals as signed sums, reversals where determined."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from utfall_gateway.domain.statements import SWEDEN, parse_period, period_of, periods_between, statement

CONTRACT = {
    "contract_id": "c",
    "name": "C",
    "commissioner_municipality": "0180",
    "funder": "f",
    "total_cap_ore": 1_000_000,
}


def entry(kind: str, amount: int, when: datetime, provider: str = "p") -> dict[str, object]:
    return {
        "entry_id": f"{kind}-{amount}-{when.isoformat()}",
        "kind": kind,
        "payment_id": "pay",
        "milestone_id": "m",
        "measure_id": "planned_discharge",
        "measure_version": 1,
        "contract_version": 1,
        "provider_id": provider,
        "subject_ref": "s",
        "amount_ore": amount,
        "signed_amount_ore": amount if kind == "payment.triggered" else -amount,
        "evidence": [{"source": "provider/p", "id": "e1"}],
        "determined_at": when,
        "reason": None,
    }


def test_periods_are_swedish_quarters_and_months() -> None:
    q1 = parse_period("2026-Q1")
    assert q1 is not None and q1.label == "2026-Q1" and q1.months == 3
    assert q1.start == datetime(2026, 1, 1, tzinfo=SWEDEN) and q1.last_day == date(2026, 3, 31)
    dec = parse_period("2025-12")
    assert dec is not None and dec.end == datetime(2026, 1, 1, tzinfo=SWEDEN)
    assert parse_period("2026-Q5") is None and parse_period("2026-13") is None
    # 23:30 UTC on 31 March is already 1 April in Stockholm (summer time): the second quarter
    assert period_of(datetime(2026, 3, 31, 23, 30, tzinfo=UTC), "quarter").label == "2026-Q2"
    assert [
        p.label
        for p in periods_between(datetime(2025, 11, 5, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC), "month")
    ] == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]


def test_a_reversal_falls_in_the_period_it_is_determined_in() -> None:
    q1, q2 = parse_period("2026-Q1"), parse_period("2026-Q2")
    assert q1 is not None and q2 is not None
    paid = entry("payment.triggered", 50_000, datetime(2026, 2, 1, tzinfo=SWEDEN))
    undone = entry("payment.reversed", 50_000, datetime(2026, 4, 2, tzinfo=SWEDEN))
    first = statement(
        CONTRACT,
        q1,
        [paid],
        opening_ore=0,
        contract_opening_ore=0,
        contract_net_ore=50_000,
        provider_id=None,
        today=date(2026, 5, 1),
    )
    second = statement(
        CONTRACT,
        q2,
        [undone],
        opening_ore=50_000,
        contract_opening_ore=50_000,
        contract_net_ore=-50_000,
        provider_id=None,
        today=date(2026, 5, 1),
    )
    assert (first["payments_ore"], first["reversals_ore"], first["closing_balance_ore"]) == (
        50_000,
        0,
        50_000,
    )
    assert first["complete"] and not second["complete"]
    assert (second["opening_balance_ore"], second["reversals_ore"], second["closing_balance_ore"]) == (
        50_000,
        50_000,
        0,
    )
    assert second["cap_used_ore"] == 0 and second["cap_left_ore"] == 1_000_000
    assert second["entries"][0]["evidence_event_ids"] == ["provider/p/e1"]
    # the API's typed answer takes the statement as it is, and serialises it unchanged
    from utfall_gateway.routes.statements import StatementOut

    for s in (first, second):
        assert StatementOut.model_validate(s).model_dump(mode="json", by_alias=True) == s


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 100_000), st.integers(0, 364)), max_size=40))
def test_statements_of_every_period_add_up_to_the_ledger(draws: list[tuple[bool, int, int]]) -> None:
    """The statements of consecutive periods chain: each opens where the last closed, and together their
    nets are the signed sum of every entry."""
    entries = [
        entry(
            "payment.triggered" if pay else "payment.reversed",
            amount,
            datetime.combine(date(2026, 1, 1) + timedelta(days=day), time(12), tzinfo=SWEDEN),
        )
        for pay, amount, day in draws
    ]
    balance = 0
    for period in periods_between(
        datetime(2026, 1, 1, tzinfo=SWEDEN), datetime(2026, 12, 31, tzinfo=SWEDEN), "month"
    ):
        inside = [e for e in entries if period.start <= e["determined_at"] < period.end]  # type: ignore[operator]
        net = sum(int(e["signed_amount_ore"]) for e in inside)  # type: ignore[call-overload]
        s = statement(
            CONTRACT,
            period,
            inside,
            opening_ore=balance,
            contract_opening_ore=balance,
            contract_net_ore=net,
            provider_id=None,
            today=date(2027, 1, 1),
        )
        assert s["opening_balance_ore"] == balance
        assert s["payments_ore"] - s["reversals_ore"] == s["net_ore"] == net
        balance = s["closing_balance_ore"]
    assert balance == sum(int(e["signed_amount_ore"]) for e in entries)  # type: ignore[call-overload]


def test_amounts_read_the_swedish_way_with_one_minus_sign_and_times_in_swedish_time() -> None:
    from utfall_gateway.domain.statements import municipality_name
    from utfall_gateway.web.rendering import kronor, swedish_time

    assert kronor(1_690_000_000) == "16\u00a0900\u00a0000,00"
    assert kronor(-125_050) == "\u22121\u00a0250,50" and kronor(-5) == "\u22120,05" and kronor(0) == "0,00"
    assert swedish_time("2026-01-15T08:30:00+00:00") == "2026-01-15 09:30"  # CET
    assert swedish_time("2026-07-15T08:30:00+00:00") == "2026-07-15 10:30"  # CEST
    assert municipality_name("0180") == "Stockholms kommun"
    assert municipality_name("1980") == "Västerås kommun"  # no genitive s after s
    assert municipality_name("9999") == "9999"
