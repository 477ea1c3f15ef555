"""An independent, deliberately plain recomputation of outcome facts from raw provider events, written for the
tests from the specification (not sharing code with the measures service)."""

from __future__ import annotations

import calendar
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

HOME = {"parents", "relatives", "own_housing", "supported_housing"}
LESS_INTENSIVE = HOME | {"family_home"}


def plus_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def band(age: int) -> str:
    return "0-12" if age <= 12 else "13-15" if age <= 15 else "16-17" if age <= 17 else "18-20"


def live_episodes(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(provider, episode) -> {start, end, followups} from the events that count: duplicates once, retracted
    events never."""
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
    # Where several live events fill one slot (a corrected event whose retraction has not come, or never
    # comes), the latest by (event time, id) counts: visiting them in that order, the last one stays.
    live.sort(key=lambda e: (datetime.fromisoformat(e["time"]), e["id"]))
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
    return dict(episodes)


def age_at(person_id: str, day: date) -> int:
    pn = person_id
    born = date(int(pn[:4]), int(pn[4:6]), int(pn[6:8]) - (60 if int(pn[6:8]) > 60 else 0))
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def expected_facts(events: list[dict[str, Any]], today: date) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(provider, episode, measure) -> {status, outcome_date, dims...} for every ended episode."""
    episodes = live_episodes(events)
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
        age = age_at(pn, start)
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

        # outcome_date: the day the evidence settled the status (the discharge, the deciding follow-up's
        # assessment, the re-placement's start), or the day after the window and its grace closed.
        def put(measure: str, status: str, on: date | None) -> None:
            out[(provider, episode_id, measure)] = {"status": status, "outcome_date": on, **dims}

        def closed_on(months: int) -> date:
            return plus_months(end, months) + timedelta(days=61)

        def open_or(months: int, closed: str) -> tuple[str, date | None]:
            return ("pending", None) if today < closed_on(months) else (closed, closed_on(months))

        def assessed(f: dict[str, Any]) -> date:
            return date.fromisoformat(f["assessed_on"])

        put("planned_discharge", "achieved" if ep["end"]["end_reason"] == "planned" else "not_achieved", end)
        put(
            "less_intensive_after",
            "achieved" if ep["end"]["destination"] in LESS_INTENSIVE else "not_achieved",
            end,
        )
        for months in (6, 12, 24):
            limit = plus_months(end, months)
            replacements = sorted(
                date.fromisoformat(o["start_date"])
                for o in others
                if o["care_type"] != "outpatient" and end < date.fromisoformat(o["start_date"]) <= limit
            )
            said_yes = [
                f
                for m, f in sorted(followups.items())
                if m <= months and f.get("replaced_since_discharge") is True
            ]
            own = followups.get(months)
            if replacements:
                status, on = "not_achieved", replacements[0]
            elif said_yes:
                status, on = "not_achieved", assessed(said_yes[0])
            elif own is not None and own.get("replaced_since_discharge") is False:
                status, on = "achieved", assessed(own)
            else:
                status, on = open_or(months, "missing")
            put(f"no_replacement_{months}m", status, on)
        twelve = followups.get(12)
        answer = twelve.get("in_education_or_work") if twelve else None
        if twelve is not None and answer is not None:
            put("education_or_work_12m", "achieved" if answer else "not_achieved", assessed(twelve))
        else:
            put("education_or_work_12m", *open_or(12, "missing"))
        living = twelve["living_situation"] if twelve else None
        if twelve is not None and living in HOME | {"family_home", "institution"}:
            put("living_at_home_12m", "achieved" if living in HOME else "not_achieved", assessed(twelve))
        else:
            put("living_at_home_12m", *open_or(12, "missing"))
        if twelve is not None:
            put("followup_coverage_12m", "achieved", assessed(twelve))
        else:
            put("followup_coverage_12m", *open_or(12, "not_achieved"))
    return out


# The published namespace of payment ids (docs/architecture.md): UUIDv5 of contract, subject, episode, milestone.
PAYMENT_NAMESPACE = uuid.UUID("5b2f7c1e-8f0a-4d53-9c61-0e4a1b7f6d10")


def enrolled(contract: dict[str, Any], start: dict[str, Any], age_at_start: int) -> bool:
    """The cohort rule, read straight from the contract's YAML/JSON form and a placement.started's data."""
    rule = contract["cohort"]
    return (
        start["provider_id"] in contract["provider_ids"]
        and (not rule.get("municipalities") or start["municipality_code"] in rule["municipalities"])
        and (not rule.get("care_types") or start["care_type"] in rule["care_types"])
        and (not rule.get("target_groups") or start["target_group"] in rule["target_groups"])
        and (not rule.get("legal_bases") or start["legal_basis"] in rule["legal_bases"])
        and rule["min_age"] <= age_at_start <= rule["max_age"]
        and str(rule["enrolment_from"]) <= start["start_date"] <= str(rule["enrolment_to"])
    )


def expected_participants(
    events: list[dict[str, Any]], contract: dict[str, Any], subject_of: Any
) -> dict[tuple[str, str], str]:
    """(provider, episode) -> subject_ref of every episode whose counting placement.started matches the
    contract's cohort rule (enrolment by rule: nobody picks). `subject_of(person_id)` is the pseudonym."""
    out = {}
    for key, ep in live_episodes(events).items():
        start = ep.get("start")
        if start is None:
            continue
        if enrolled(contract, start, age_at(start["person_id"], date.fromisoformat(start["start_date"]))):
            out[key] = subject_of(start["person_id"])
    return out


def expected_payments(
    contract: dict[str, Any],
    participants: dict[tuple[str, str], str],
    facts: dict[tuple[str, str, str], dict[str, Any]],
) -> dict[tuple[str, str, str], int]:
    """(provider, episode, milestone) -> net öre paid. Participants: (provider, episode) -> subject_ref.
    Earned milestones are paid first determined, first paid (outcome date, then first payment id), each cut
    to what the per-participant cap and the total cap have left."""
    earned = []
    for (provider, episode), subject in participants.items():
        for m in contract["milestones"]:
            fact = facts.get((provider, episode, m["measure_id"]))
            if fact is not None and fact["status"] == "achieved":
                name = f"{contract['contract_id']}|{subject}|{provider}/{episode}|{m['milestone_id']}"
                first = str(uuid.uuid5(PAYMENT_NAMESPACE, name))
                earned.append((fact["outcome_date"], first, provider, episode, m))
    earned.sort(key=lambda t: (t[0], t[1]))
    person_left: dict[tuple[str, str], int] = defaultdict(lambda: int(contract["per_participant_cap_ore"]))
    total_left = int(contract["total_cap_ore"])
    out: dict[tuple[str, str, str], int] = {}
    for _, _, provider, episode, m in earned:
        amount = min(int(m["price_ore"]), person_left[(provider, episode)], total_left)
        person_left[(provider, episode)] -= amount
        total_left -= amount
        out[(provider, episode, m["milestone_id"])] = amount
    return {k: v for k, v in out.items() if v > 0}


# --- verified outcomes (issue 31), from the definitions in docs/architecture.md, "Registers" ---------------
IN_EDUCATION_OR_WORK = {"enrolled", "completed", "employed"}


def counting_rows(extracts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The register rows that count: of each (register, record id), the version from the extract with the
    latest as_of, then the greatest extract id. `extracts`: {register_id, extract_id, as_of, records}."""
    best: dict[tuple[str, str], tuple[tuple[str, str], dict[str, Any]]] = {}
    for x in extracts:
        rank = (str(x["as_of"]), x["extract_id"])
        for row in x["records"]:
            key = (x["register_id"], row["record_id"])
            if key not in best or rank > best[key][0]:
                best[key] = (rank, {**row, "register_id": x["register_id"]})
    return [row for _, row in best.values()]


def covered(extracts: list[dict[str, Any]], municipality: str, kind: str, first: date, last: date) -> bool:
    """Every day from `first` through `last` lies in some complete extract's coverage of the municipality and
    kind (a day-by-day union, deliberately plain)."""
    days = set()
    for x in extracts:
        c = x["coverage"]
        if municipality in c["municipalities"] and kind in c["kinds"]:
            day, through = (
                date.fromisoformat(str(c["covers_from"])),
                date.fromisoformat(str(c["covers_through"])),
            )
            while day <= through:
                days.add(day)
                day += timedelta(days=1)
    day = first
    while day <= last:
        if day not in days:
            return False
        day += timedelta(days=1)
    return True


def expected_verified(
    events: list[dict[str, Any]], extracts: list[dict[str, Any]]
) -> dict[tuple[str, str, str], str]:
    """(provider, episode, measure) -> achieved | not_achieved | excluded | unverified, for every ended
    episode and each measure a register can verify. `extracts`: complete extracts as sent (personnummer in
    clear), each with its register_id."""
    episodes = live_episodes(events)
    rows = counting_rows(extracts)
    by_person_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_person_rows[row["person_id"]].append(row)
    by_person: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ep in episodes.values():
        if "start" in ep:
            by_person[ep["start"]["person_id"]].append(ep["start"])
    out: dict[tuple[str, str, str], str] = {}
    for (provider, episode_id), ep in episodes.items():
        if "start" not in ep or "end" not in ep:
            continue
        end = date.fromisoformat(ep["end"]["end_date"])
        if end < date.fromisoformat(ep["start"]["start_date"]):
            continue
        pn, municipality = ep["start"]["person_id"], ep["start"]["municipality_code"]
        mine = by_person_rows.get(pn, [])

        def exclusion(until: date, end: date = end, mine: list[dict[str, Any]] = mine) -> bool:
            return any(
                r["kind"] == "exclusion" and end <= date.fromisoformat(str(r["on_date"])) <= until
                for r in mine
            )

        for months in (6, 12, 24):
            limit = plus_months(end, months)
            starts = [
                date.fromisoformat(o["start_date"])
                for o in by_person[pn]
                if o is not ep["start"] and o["care_type"] != "outpatient"
            ] + [
                date.fromisoformat(str(r["start_date"]))
                for r in mine
                if r["kind"] == "placement" and r["care_type"] != "outpatient"
            ]
            inside = sorted(s for s in starts if end < s <= limit)
            if exclusion(inside[0] - timedelta(days=1) if inside else limit):
                status = "excluded"
            elif inside:
                status = "not_achieved"
            elif covered(extracts, municipality, "placement", end + timedelta(days=1), limit):
                status = "achieved"
            else:
                status = "unverified"
            out[(provider, episode_id, f"no_replacement_{months}m")] = status
        on = plus_months(end, 12)
        statuses = [
            r
            for r in mine
            if r["kind"] == "status"
            and on - timedelta(days=92) <= date.fromisoformat(str(r["on_date"])) <= on + timedelta(days=60)
        ]
        if exclusion(on):
            status = "excluded"
        elif statuses:
            nearest = min(
                statuses,
                key=lambda r: (
                    abs((date.fromisoformat(str(r["on_date"])) - on).days),
                    -date.fromisoformat(str(r["on_date"])).toordinal(),
                ),
            )
            status = "achieved" if nearest["status"] in IN_EDUCATION_OR_WORK else "not_achieved"
        else:
            status = "unverified"
        out[(provider, episode_id, "education_or_work_12m")] = status
    return out
