"""An independent, deliberately plain recomputation of outcome facts from raw provider events, written for the
tests from the specification (not sharing code with the measures service)."""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

HOME = {"parents", "relatives", "own_housing", "supported_housing"}
LESS_INTENSIVE = HOME | {"family_home"}


def plus_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def band(age: int) -> str:
    return "0-12" if age <= 12 else "13-15" if age <= 15 else "16-17" if age <= 17 else "18-20"


def expected_facts(events: list[dict[str, Any]], today: date) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(provider, episode, measure) -> {status, dims...} for every ended episode."""
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        unique.setdefault((e["source"], e["id"]), e)
    retracted = {
        (e["source"], e["data"]["retracted_event_id"])
        for e in unique.values()
        if e["type"].endswith("event.retracted.v1")
    }
    live = [
        e for k, e in unique.items() if k not in retracted and not e["type"].endswith("event.retracted.v1")
    ]
    episodes: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"followups": {}})
    for e in live:
        provider = e["source"].split("/", 1)[1]
        ep = episodes[(provider, e["data"]["episode_id"])]
        kind = e["type"].split(".")[2]
        if kind == "placement" and e["type"].endswith("started.v1"):
            ep["start"] = e["data"]
        elif kind == "placement":
            ep["end"] = e["data"]
        else:
            ep["followups"][e["data"]["followup_month"]] = e["data"]
    by_person: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key, ep in episodes.items():
        if "start" in ep:
            by_person[ep["start"]["person_id"]].append(key)
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (provider, episode_id), ep in episodes.items():
        if "start" not in ep or "end" not in ep:
            continue
        start = date.fromisoformat(ep["start"]["start_date"])
        end = date.fromisoformat(ep["end"]["end_date"])
        if end < start:
            continue
        pn = ep["start"]["person_id"]
        born = date(int(pn[:4]), int(pn[4:6]), int(pn[6:8]) - (60 if int(pn[6:8]) > 60 else 0))
        age = start.year - born.year - ((start.month, start.day) < (born.month, born.day))
        followups = {m: f for m, f in ep["followups"].items() if date.fromisoformat(f["assessed_on"]) >= end}
        others = [episodes[k]["start"] for k in by_person[pn] if k != (provider, episode_id)]
        dims = {
            "provider_id": provider,
            "unit_id": ep["start"]["unit_id"],
            "municipality_code": ep["start"]["municipality_code"],
            "county_code": ep["start"]["municipality_code"][:2],
            "care_type": ep["start"]["care_type"],
            "legal_basis": ep["start"]["legal_basis"],
            "target_group": ep["start"]["target_group"],
            "sex": "male" if int(pn[10]) % 2 else "female",
            "age_band": band(age),
            "discharge_year": end.year,
            "discharge_quarter": (end.month - 1) // 3 + 1,
            "length_of_stay_days": (end - start).days,
        }

        def put(measure: str, status: str) -> None:
            out[(provider, episode_id, measure)] = {"status": status, **dims}

        def open_or(months: int, closed: str) -> str:
            return "pending" if today <= plus_months(end, months) + timedelta(days=60) else closed

        put("planned_discharge", "achieved" if ep["end"]["end_reason"] == "planned" else "not_achieved")
        put(
            "less_intensive_after",
            "achieved" if ep["end"]["destination"] in LESS_INTENSIVE else "not_achieved",
        )
        for months in (6, 12, 24):
            limit = plus_months(end, months)
            replaced = any(
                o["care_type"] != "outpatient" and end < date.fromisoformat(o["start_date"]) <= limit
                for o in others
            )
            said_yes = any(
                m <= months and f.get("replaced_since_discharge") is True for m, f in followups.items()
            )
            own = followups.get(months)
            if replaced or said_yes:
                status = "not_achieved"
            elif own is not None and own.get("replaced_since_discharge") is False:
                status = "achieved"
            else:
                status = open_or(months, "missing")
            put(f"no_replacement_{months}m", status)
        twelve = followups.get(12)
        answer = twelve.get("in_education_or_work") if twelve else None
        put(
            "education_or_work_12m",
            "achieved" if answer is True else "not_achieved" if answer is False else open_or(12, "missing"),
        )
        living = twelve["living_situation"] if twelve else None
        put(
            "living_at_home_12m",
            "achieved"
            if living in HOME
            else "not_achieved"
            if living in ("family_home", "institution")
            else open_or(12, "missing"),
        )
        put("followup_coverage_12m", "achieved" if twelve else open_or(12, "not_achieved"))
    return out
