"""Settlement statements of an outcome contract, as pure functions over ledger entries.

A statement covers one period (a month or a quarter, as the contract sets, in Swedish time) and one contract,
or one provider of it. Every ledger entry belongs to the period in which it was determined: a reversal
determined later falls in the later period, never back into one already settled. The ledger is append-only
and entries are stamped when they are determined, so a past period's statement never changes. Its totals
are the signed sums of the entries, which are the `payments.v1` messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

SWEDEN = ZoneInfo("Europe/Stockholm")
PeriodKind = Literal["month", "quarter"]
_QUARTER = re.compile(r"^(?P<year>20\d\d)-Q(?P<quarter>[1-4])$")
_MONTH = re.compile(r"^(?P<year>20\d\d)-(?P<month>0[1-9]|1[0-2])$")


@dataclass(frozen=True, order=True)
class Period:
    """A statement period: `2026-Q1` or `2026-03`."""

    year: int
    first_month: int
    months: int

    @property
    def kind(self) -> PeriodKind:
        return "quarter" if self.months == 3 else "month"

    @property
    def label(self) -> str:
        if self.kind == "quarter":
            return f"{self.year}-Q{(self.first_month - 1) // 3 + 1}"
        return f"{self.year}-{self.first_month:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.first_month, 1, tzinfo=SWEDEN)

    @property
    def end(self) -> datetime:
        month = self.first_month + self.months
        year = self.year + (month - 1) // 12
        return datetime(year, (month - 1) % 12 + 1, 1, tzinfo=SWEDEN)

    @property
    def last_day(self) -> date:
        return date.fromordinal(self.end.date().toordinal() - 1)


def parse_period(text: str) -> Period | None:
    if match := _QUARTER.match(text):
        return Period(int(match["year"]), (int(match["quarter"]) - 1) * 3 + 1, 3)
    if match := _MONTH.match(text):
        return Period(int(match["year"]), int(match["month"]), 1)
    return None


def period_of(moment: datetime, kind: PeriodKind) -> Period:
    local = moment.astimezone(SWEDEN)
    if kind == "quarter":
        return Period(local.year, (local.month - 1) // 3 * 3 + 1, 3)
    return Period(local.year, local.month, 1)


def periods_between(first: datetime, last: datetime, kind: PeriodKind) -> list[Period]:
    """Every period from the one holding `first` to the one holding `last`, oldest first."""
    out, period = [], period_of(first, kind)
    final = period_of(last, kind)
    while period <= final:
        out.append(period)
        period = period_of(period.end, kind)
    return out


def _signed(entry: Mapping[str, Any]) -> int:
    return int(entry["signed_amount_ore"])


def statement(
    contract: Mapping[str, Any],
    period: Period,
    entries: Sequence[Mapping[str, Any]],
    *,
    opening_ore: int,
    contract_opening_ore: int,
    contract_net_ore: int,
    provider_id: str | None,
    today: date,
) -> dict[str, Any]:
    """One period's statement. `entries`: the ledger entries determined in the period (of the provider when
    one is named), oldest first; `opening_ore`: their net paid before the period; `contract_*`: the same for
    the whole contract, for the cap, which is the contract's."""
    triggered = [e for e in entries if e["kind"] == "payment.triggered"]
    reversed_ = [e for e in entries if e["kind"] == "payment.reversed"]
    net = sum(_signed(e) for e in entries)
    cap = int(contract["total_cap_ore"])
    cap_used = contract_opening_ore + contract_net_ore
    return {
        "contract_id": contract["contract_id"],
        "contract_name": contract["name"],
        "commissioner_municipality": contract["commissioner_municipality"],
        "funder": contract["funder"],
        "provider_id": provider_id,
        "period": period.label,
        "period_kind": period.kind,
        "from": period.start.date().isoformat(),
        "to": period.last_day.isoformat(),
        "time_zone": "Europe/Stockholm",
        "complete": period.end.date() <= today,  # a period still running can gain entries
        "currency": "SEK",
        "opening_balance_ore": opening_ore,
        "payments_ore": sum(int(e["amount_ore"]) for e in triggered),
        "payments": len(triggered),
        "reversals_ore": sum(int(e["amount_ore"]) for e in reversed_),
        "reversals": len(reversed_),
        "net_ore": net,
        "closing_balance_ore": opening_ore + net,
        "cap_ore": cap,
        "cap_used_ore": cap_used,
        "cap_left_ore": cap - cap_used,
        "entries": [_line(e) for e in entries],
    }


def _line(e: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "entry_id": e["entry_id"],
        "kind": e["kind"],
        "payment_id": e["payment_id"],
        "milestone_id": e["milestone_id"],
        "measure_id": e["measure_id"],
        "measure_version": e["measure_version"],
        "contract_version": e["contract_version"],
        "provider_id": e["provider_id"],
        "subject_ref": e["subject_ref"],
        "amount_ore": int(e["amount_ore"]),
        "signed_amount_ore": int(e["signed_amount_ore"]),
        "evidence_event_ids": [f"{ev['source']}/{ev['id']}" for ev in e["evidence"]],
        "determined_at": e["determined_at"].isoformat(),
        "reason": e["reason"],
    }


CSV_COLUMNS = (
    "period",
    "entry_id",
    "kind",
    "payment_id",
    "milestone_id",
    "measure_id",
    "measure_version",
    "contract_version",
    "provider_id",
    "subject_ref",
    "amount_ore",
    "signed_amount_ore",
    "evidence_event_ids",
    "determined_at",
    "reason",
)
