"""A register extract for a synthetic cohort: what a municipality's social services register would hold of
the cohort's young people, over part of its municipalities, with deliberate differences from what the
providers reported (a re-placement at a home not on Utfall; school answers one provider reported that the
register contradicts), so verification has something to find."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from utfall_events.periods import add_months

DEMO_REGISTER = "socialtjanstens-register"


def _episodes(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each episode's latest start and end and its 12-month follow-up, as the events last stated them
    (retractions aside: a synthetic register is not a second fold)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: (e["time"], e["id"])):
        data = event["data"]
        if "episode_id" not in data:
            continue
        provider = event["source"].split("/", 1)[1]
        episode = out.setdefault((provider, data["episode_id"]), {})
        kind = event["type"].split(".")[3]
        if kind == "started":
            episode["started"] = data
        elif kind == "ended":
            episode["ended"] = data
        elif kind == "recorded":
            episode.setdefault("followups", {})[data["followup_month"]] = data
    return out


# record ids: p- a placement on Utfall, pr- a re-placement a follow-up reported, pk- one it did not (a
# municipal home), s- a status, x- an exclusion; each followed by provider and episode id (at most 64 in all)


def register_extract(
    events: list[dict[str, Any]],
    *,
    today: date,
    contradicted_provider: str,
    seed: int = 7,
    share_of_municipalities: float = 0.6,
) -> dict[str, Any]:
    """One extract (RegisterExtractV1 as JSON) covering some of the cohort's placing municipalities."""
    rng = random.Random(seed)
    episodes = _episodes(events)
    municipalities = sorted({e["started"]["municipality_code"] for e in episodes.values() if "started" in e})
    covered = set(municipalities[: max(1, round(len(municipalities) * share_of_municipalities))])
    records: list[dict[str, Any]] = []
    for (provider, episode_id), episode in sorted(episodes.items()):
        started, ended = episode.get("started"), episode.get("ended")
        if started is None or started["municipality_code"] not in covered:
            continue
        person = started["person_id"]
        records.append(
            {
                "record_id": f"p-{provider}-{episode_id}",
                "kind": "placement",
                "person_id": person,
                "start_date": started["start_date"],
                **({"end_date": ended["end_date"]} if ended else {}),
                "care_type": started["care_type"],
                "municipality_code": started["municipality_code"],
                "provider_id": provider,
            }
        )
        if ended is None:
            continue
        end = date.fromisoformat(ended["end_date"])
        followups = episode.get("followups", {})
        followup = followups.get(12) or {}
        # a re-placement a follow-up reported is in the register too (with a home not on Utfall)
        said_yes = sorted(m for m, f in followups.items() if f.get("replaced_since_discharge") is True)
        reported_on = end + timedelta(days=28 * said_yes[0]) if said_yes else None
        if reported_on is not None and reported_on <= today:
            records.append(
                {
                    "record_id": f"pr-{provider}-{episode_id}",
                    "kind": "placement",
                    "person_id": person,
                    "start_date": reported_on.isoformat(),
                    "care_type": "family_home",
                    "municipality_code": started["municipality_code"],
                }
            )
        # a re-placement at a municipal home (not on Utfall) the provider's follow-up did not mention
        if followup.get("replaced_since_discharge") is False:
            chance = 0.25 if provider == contradicted_provider else 0.03
            replaced_on = end + timedelta(days=90 + rng.randrange(120))
            if rng.random() < chance and replaced_on <= today:
                records.append(
                    {
                        "record_id": f"pk-{provider}-{episode_id}",
                        "kind": "placement",
                        "person_id": person,
                        "start_date": replaced_on.isoformat(),
                        "care_type": "hvb",
                        "municipality_code": started["municipality_code"],
                    }
                )
        emigrated = end + timedelta(days=200)
        if rng.random() < 0.01 and emigrated <= today:
            records.append(
                {
                    "record_id": f"x-{provider}-{episode_id}",
                    "kind": "exclusion",
                    "person_id": person,
                    "on_date": emigrated.isoformat(),
                    "reason": "emigration",
                }
            )
        on = add_months(end, 12)
        if on > today:
            continue
        reported = followup.get("in_education_or_work")
        truly = reported if reported is not None else rng.random() < 0.6
        if provider == contradicted_provider and reported is True and rng.random() < 0.35:
            truly = False
        records.append(
            {
                "record_id": f"s-{provider}-{episode_id}",
                "kind": "status",
                "person_id": person,
                "on_date": on.isoformat(),
                "status": rng.choice(["enrolled", "employed"]) if truly else "none",
            }
        )
    return {
        "extract_id": f"demo-{today.isoformat()}",
        "as_of": today.isoformat(),
        "coverage": {
            "municipalities": sorted(covered),
            "kinds": ["placement", "status", "exclusion"],
            "covers_from": "2015-01-01",
            "covers_through": today.isoformat(),
        },
        "records": records,
    }
