"""The reference finance consumer's books: a duplicate delivery is booked once, a dispute holds a payment
without moving money, a resolution releases the hold, an upheld dispute's reversal takes the money back."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from utfall_contracts.finance_consumer import Books
from utfall_events.payments import PaymentV1

EXAMPLES = Path(str(resources.files("utfall_events").joinpath("examples"))) / "messages"


def message(name: str) -> PaymentV1:
    return PaymentV1.model_validate(json.loads((EXAMPLES / f"{name}.json").read_text())["message"])


def test_books_follow_a_disputed_payment_through_its_upheld_reversal() -> None:
    books = Books()
    triggered, disputed, resolved = (
        message("payment_triggered"),
        message("payment_disputed"),
        message("payment_dispute_resolved"),
    )
    reversed_ = triggered.model_copy(update={"kind": "payment.reversed", "entry_id": "r"})
    assert books.apply(triggered) and not books.apply(triggered)
    assert books.apply(disputed)
    assert books.on_hold == {triggered.payment_id}
    assert books.balance_ore[triggered.contract_id] == triggered.amount_ore  # a hold moves no money
    assert books.apply(resolved) and books.apply(reversed_)
    assert books.on_hold == set() and books.balance_ore[triggered.contract_id] == 0
    assert books.duplicates == 1
