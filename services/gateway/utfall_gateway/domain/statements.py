"""Settlement statements of an outcome contract, as pure functions over ledger entries.

A statement covers one period (a month or a quarter, as the contract sets, in Swedish time) and one contract,
or one provider of it. Every ledger entry belongs to the period in which it was determined: a reversal
determined later falls in the later period, never back into one already settled. The ledger is append-only
and entries are stamped when they are determined, so a past period's statement never changes. Its totals
are the signed sums of the entries, which are the `payments.v1` messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from utfall_events.periods import SWEDEN, Period, PeriodKind, parse_period, period_of, periods_between
from utfall_events.reference import municipalities

__all__ = [
    "SWEDEN",
    "Period",
    "PeriodKind",
    "funder_name",
    "municipality_name",
    "parse_period",
    "period_of",
    "periods_between",
    "statement",
]


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
    closed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One period's statement. `entries`: the ledger entries determined in the period (of the provider when
    one is named), oldest first; `opening_ore`: their net paid before the period; `contract_*`: the same for
    the whole contract, for the cap, which is the contract's."""
    triggered = [e for e in entries if e["kind"] == "payment.triggered"]
    reversed_ = [e for e in entries if e["kind"] == "payment.reversed"]
    disputed = [e for e in entries if e["kind"] == "payment.disputed"]
    resolved = [e for e in entries if e["kind"] == "payment.dispute_resolved"]
    net = sum(_signed(e) for e in entries)
    cap = int(contract["total_cap_ore"])
    cap_used = contract_opening_ore + contract_net_ore
    return {
        "contract_id": contract["contract_id"],
        "contract_name": contract["name"],
        "commissioner_municipality": contract["commissioner_municipality"],
        "commissioner_name": municipality_name(contract["commissioner_municipality"]),
        "funder": contract["funder"],
        "funder_name": funder_name(contract),
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
        "disputes_raised": len(disputed),
        "disputed_ore": sum(int(e["amount_ore"]) for e in disputed),
        "disputes_resolved": len(resolved),
        "net_ore": net,
        "closing_balance_ore": opening_ore + net,
        "cap_ore": cap,
        "cap_used_ore": cap_used,
        "cap_left_ore": cap - cap_used,
        "closed": _closure(closed),
        "entries": [_line(e) for e in entries],
    }


def municipality_name(code: str) -> str:
    """ "Stockholms kommun": the name in the genitive (no s after s, x or z), as municipalities are called."""
    found = municipalities().get(code)
    if found is None:
        return code
    genitive = found.name if found.name[-1] in "sxz" else found.name + "s"
    return f"{genitive} kommun"


def funder_name(contract: Mapping[str, Any]) -> str:
    """The funder as the contract names it, or its id."""
    return str((contract.get("definition") or {}).get("funder_name") or contract["funder"])


def _closure(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The commissioner's closing of the period, with the contract's totals it recorded."""
    if row is None:
        return None
    return {
        "closed_at": row["closed_at"].isoformat(),
        "closed_by_key_id": row["closed_by_key_id"],
        "closed_by_name": (row.get("closed_by_person") or {}).get("name"),
        "contract_opening_balance_ore": row["opening_balance_ore"],
        "contract_net_ore": row["net_ore"],
        "contract_closing_balance_ore": row["closing_balance_ore"],
        "contract_entries": row["entries"],
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
