"""Reference data shipped with the event contract: SCB municipality codes and counties."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Municipality:
    code: str
    name: str
    county_code: str
    population_thousands_approx: int  # rough size, used only to weight synthetic data


COUNTIES: dict[str, str] = {
    "01": "Stockholms län",
    "03": "Uppsala län",
    "04": "Södermanlands län",
    "05": "Östergötlands län",
    "06": "Jönköpings län",
    "07": "Kronobergs län",
    "08": "Kalmar län",
    "09": "Gotlands län",
    "10": "Blekinge län",
    "12": "Skåne län",
    "13": "Hallands län",
    "14": "Västra Götalands län",
    "17": "Värmlands län",
    "18": "Örebro län",
    "19": "Västmanlands län",
    "20": "Dalarnas län",
    "21": "Gävleborgs län",
    "22": "Västernorrlands län",
    "23": "Jämtlands län",
    "24": "Västerbottens län",
    "25": "Norrbottens län",
}


@cache
def municipalities() -> dict[str, Municipality]:
    """The 290 Swedish municipalities by their 4-digit SCB code."""
    text = resources.files("utfall_events").joinpath("data/municipalities.csv").read_text("utf-8")
    rows = csv.DictReader(text.splitlines())
    return {
        row["code"]: Municipality(
            row["code"], row["name"], row["county_code"], int(row["population_thousands_approx"])
        )
        for row in rows
    }


def is_municipality(code: str) -> bool:
    return code in municipalities()


def county_of(municipality_code: str) -> str:
    return municipality_code[:2]
