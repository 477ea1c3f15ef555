"""A seeded, deterministic synthetic cohort: providers with units, the 290 municipalities weighted by size,
plausible care types and legal bases, ages 0-20, stays from days to years, planned and unplanned endings,
re-placements (some with another provider), follow-ups at 6/12/24 months (some missing), and the mess of
real feeds: late and duplicated events and retractions followed by corrections."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from utfall_events.personnummer import make_person_number
from utfall_events.reference import municipalities


@dataclass(frozen=True)
class Provider:
    provider_id: str
    care_type: str
    units: tuple[str, ...]
    weight: float
    legal_bases: tuple[tuple[str, float], ...] = (("SoL", 0.7), ("LVU", 0.3))


PROVIDERS: tuple[Provider, ...] = (
    Provider("hvb-eken", "hvb", ("eken-1", "eken-2", "eken-3"), 3.0),
    Provider("hvb-bjorken", "hvb", ("bjorken-a", "bjorken-b"), 2.0),
    Provider("hvb-granen", "hvb", ("granen-1", "granen-2"), 2.0),
    Provider("hvb-linden", "hvb", ("linden-1",), 1.0),
    Provider(
        "familjehem-vast",
        "family_home",
        ("fh-vast-goteborg", "fh-vast-boras"),
        3.0,
        (("SoL", 0.55), ("LVU", 0.45)),
    ),
    Provider("familjehem-norr", "family_home", ("fh-norr-umea",), 1.5, (("SoL", 0.55), ("LVU", 0.45))),
    Provider(
        "stodboende-vast",
        "supported_housing",
        ("sb-vast-1", "sb-vast-2"),
        1.5,
        (("SoL", 0.95), ("LVU", 0.05)),
    ),
    Provider("stodboende-syd", "supported_housing", ("sb-syd-malmo",), 1.0, (("SoL", 0.95), ("LVU", 0.05))),
    Provider("sis-ljungen", "sis", ("ljungen-lsu",), 1.0, (("LVU", 1.0),)),
    Provider("oppenvard-mitt", "outpatient", ("ov-mitt-1",), 0.8, (("SoL", 1.0),)),
)
TARGET_GROUPS = (
    ("behaviour", 0.35),
    ("substance_use", 0.15),
    ("mental_health", 0.2),
    ("neuropsychiatric", 0.12),
    ("unaccompanied", 0.08),
    ("other", 0.1),
)
END_REASONS = (
    ("planned", 0.55),
    ("unplanned", 0.25),
    ("moved_to_other_care", 0.1),
    ("aged_out", 0.05),
    ("other", 0.05),
)
DESTINATIONS = (
    ("parents", 0.35),
    ("relatives", 0.08),
    ("family_home", 0.12),
    ("own_housing", 0.1),
    ("supported_housing", 0.12),
    ("hvb", 0.1),
    ("sis", 0.03),
    ("other", 0.04),
    ("unknown", 0.06),
)
LIVING = (
    ("parents", 0.4),
    ("relatives", 0.08),
    ("family_home", 0.12),
    ("own_housing", 0.15),
    ("supported_housing", 0.1),
    ("institution", 0.1),
    ("unknown", 0.05),
)


@dataclass
class CohortConfig:
    subjects: int = 1000
    seed: int = 7
    today: date = date(2026, 6, 30)
    first_start: date = date(2021, 1, 1)
    replacement_rate: float = 0.25
    other_provider_replacement: float = 0.5
    followup_missing: float = 0.2
    duplicate_rate: float = 0.03
    late_rate: float = 0.05
    retraction_rate: float = 0.02  # discharges corrected: a retraction and the corrected placement.ended
    start_correction_rate: float = 0.0  # placements corrected (another target group), the same way
    followup_correction_rate: float = 0.0  # follow-ups corrected (another answer), the same way
    ongoing_rate: float = 0.15
    providers: tuple[Provider, ...] = PROVIDERS


@dataclass
class Cohort:
    config: CohortConfig
    events: list[dict[str, Any]] = field(default_factory=list)  # in delivery order, with duplicates
    person_numbers: list[str] = field(default_factory=list)

    @property
    def unique_events(self) -> int:
        return len({(e["source"], e["id"]) for e in self.events})


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _envelope(
    kind: str,
    provider_id: str,
    event_id: str,
    at: date,
    data: dict[str, Any],
    rng: random.Random,
    subject: str | None,
) -> dict[str, Any]:
    stamp = datetime.combine(at, time(8, 0), UTC) + timedelta(minutes=rng.randrange(0, 600))
    out: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": f"provider/{provider_id}",
        "type": f"se.utfall.{kind}.v1",
        "time": stamp.isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject is not None:
        out["subject"] = subject
    return out


class _Builder:
    def __init__(self, config: CohortConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        munis = list(municipalities().values())
        self.muni_codes = [m.code for m in munis]
        self.muni_weights = [m.population_thousands_approx for m in munis]
        self.provider_weights = [p.weight for p in config.providers]
        self.counter = 0
        self.pinned: set[str] = set()  # retractions and their corrections keep their order
        self.timeline: list[tuple[date, int, dict[str, Any]]] = []

    def next_id(self, provider_id: str) -> str:
        self.counter += 1
        return f"{provider_id}-{self.config.seed}-{self.counter:08d}"

    def emit(self, at: date, event: dict[str, Any]) -> None:
        self.timeline.append((at, len(self.timeline), event))

    def person(self) -> tuple[str, date]:
        rng = self.rng
        age = rng.choices(range(21), [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5, 8, 10, 12, 12, 10, 6, 4, 2])[0]
        span = (self.config.today - self.config.first_start).days
        first_start = self.config.first_start + timedelta(days=rng.randrange(0, max(1, span - 30)))
        born = first_start - timedelta(days=int(age * 365.25) + rng.randrange(1, 300))
        number = make_person_number(
            born, rng.randrange(0, 1000), female=rng.random() < 0.45, coordination=rng.random() < 0.04
        )
        return number, first_start

    def subject(self) -> str:
        rng = self.rng
        number, start = self.person()
        municipality = rng.choices(self.muni_codes, self.muni_weights)[0]
        provider = rng.choices(self.config.providers, self.provider_weights)[0]
        episodes = 0
        while start <= self.config.today and episodes < 4:
            episodes += 1
            end = self.episode(number, provider, municipality, start)
            if end is None or rng.random() > self.config.replacement_rate:
                break
            start = end + timedelta(days=rng.randrange(1, 700))
            if rng.random() < self.config.other_provider_replacement:
                provider = rng.choices(self.config.providers, self.provider_weights)[0]
        return number

    def episode(self, number: str, provider: Provider, municipality: str, start: date) -> date | None:
        rng = self.rng
        cfg = self.config
        episode_id = f"ep-{self.next_id(provider.provider_id)}"
        target = _pick(rng, TARGET_GROUPS)
        legal = _pick(rng, provider.legal_bases)
        born = date(int(number[:4]), int(number[4:6]), int(number[6:8]) % 60 or 1)
        age = start.year - born.year - ((start.month, start.day) < (born.month, born.day))
        if age > 20:
            return None
        started = _envelope(
            "placement.started",
            provider.provider_id,
            self.next_id(provider.provider_id),
            start,
            {
                "episode_id": episode_id,
                "person_id": number,
                "provider_id": provider.provider_id,
                "unit_id": rng.choice(provider.units),
                "municipality_code": municipality,
                "care_type": provider.care_type,
                "legal_basis": legal,
                "target_group": target,
                "start_date": start.isoformat(),
            },
            rng,
            episode_id,
        )
        self.emit(start, started)
        if (
            cfg.start_correction_rate and rng.random() < cfg.start_correction_rate
        ):  # no draw when off: same cohorts
            when = start + timedelta(days=rng.randrange(1, 20))
            if when <= cfg.today:
                self.correct(when, started, target_group=_pick(rng, TARGET_GROUPS))
        stay = int(rng.lognormvariate(5.3, 0.9)) + 1  # a few days to a few years; median about 200 days
        end = start + timedelta(days=stay)
        if end > cfg.today or rng.random() < cfg.ongoing_rate * 0.3:
            return None
        reason = _pick(rng, END_REASONS)
        ended_data = {
            "episode_id": episode_id,
            "end_date": end.isoformat(),
            "end_reason": reason,
            "destination": _pick(rng, DESTINATIONS),
        }
        ended = _envelope(
            "placement.ended",
            provider.provider_id,
            self.next_id(provider.provider_id),
            end,
            ended_data,
            rng,
            episode_id,
        )
        self.emit(end, ended)
        if rng.random() < cfg.retraction_rate:
            when = end + timedelta(days=rng.randrange(1, 30))
            if when <= cfg.today:
                retraction = _envelope(
                    "event.retracted",
                    provider.provider_id,
                    self.next_id(provider.provider_id),
                    when,
                    {"retracted_event_id": ended["id"], "reason": "fel avslutsskäl registrerat"},
                    rng,
                    episode_id,  # the subject names the episode, so the raw topic keeps its order
                )
                corrected = _envelope(
                    "placement.ended",
                    provider.provider_id,
                    self.next_id(provider.provider_id),
                    when,
                    dict(ended_data, end_reason=_pick(rng, END_REASONS)),
                    rng,
                    episode_id,
                )
                self.pinned |= {ended["id"], retraction["id"], corrected["id"]}
                self.emit(when, retraction)
                self.emit(when, corrected)
        for month in (6, 12, 24):
            assessed = end + timedelta(days=int(month * 30.44) + rng.randrange(0, 45))
            if assessed > cfg.today or rng.random() < cfg.followup_missing:
                continue
            replaced = rng.random() < (0.1 + 0.04 * month / 6)
            recorded = _envelope(
                "followup.recorded",
                provider.provider_id,
                self.next_id(provider.provider_id),
                assessed,
                {
                    "episode_id": episode_id,
                    "followup_month": month,
                    "assessed_on": assessed.isoformat(),
                    "living_situation": _pick(rng, LIVING),
                    "in_education_or_work": None if rng.random() < 0.1 else rng.random() < 0.6,
                    "replaced_since_discharge": None if rng.random() < 0.05 else replaced,
                    "offending": None if rng.random() < 0.3 else rng.random() < 0.15,
                    "substance_misuse": None if rng.random() < 0.3 else rng.random() < 0.12,
                },
                rng,
                episode_id,
            )
            self.emit(assessed, recorded)
            if cfg.followup_correction_rate and rng.random() < cfg.followup_correction_rate:
                when = assessed + timedelta(days=rng.randrange(1, 30))
                if when <= cfg.today:
                    self.correct(
                        when,
                        recorded,
                        in_education_or_work=rng.random() < 0.6,
                        replaced_since_discharge=False,
                    )
        return end

    def correct(self, when: date, original: dict[str, Any], **changes: Any) -> None:
        """A retraction of `original` and the corrected event, on `when`; the three keep their order."""
        provider_id = original["source"].split("/", 1)[1]
        episode_id = original["data"]["episode_id"]
        retraction = _envelope(
            "event.retracted",
            provider_id,
            self.next_id(provider_id),
            when,
            {"retracted_event_id": original["id"], "reason": "felaktigt registrerat"},
            self.rng,
            episode_id,
        )
        kind = original["type"].removeprefix("se.utfall.").removesuffix(".v1")
        corrected = _envelope(
            kind,
            provider_id,
            self.next_id(provider_id),
            when,
            dict(original["data"], **changes),
            self.rng,
            episode_id,
        )
        corrected["time"] = max(corrected["time"], retraction["time"])
        self.pinned |= {original["id"], retraction["id"], corrected["id"]}
        self.emit(when, retraction)
        self.emit(when, corrected)


def generate(config: CohortConfig | None = None) -> Cohort:
    config = config or CohortConfig()
    builder = _Builder(config)
    cohort = Cohort(config)
    for _ in range(config.subjects):
        cohort.person_numbers.append(builder.subject())
    rng = builder.rng
    ordered = [e for _, _, e in sorted(builder.timeline, key=lambda t: (t[0], t[1]))]
    # Late delivery: some events swap with a later neighbour; duplicates are re-sent a little later.
    for index in range(len(ordered) - 1):
        if rng.random() < config.late_rate:
            j = min(len(ordered) - 1, index + rng.randrange(1, 20))
            if ordered[index]["id"] not in builder.pinned and ordered[j]["id"] not in builder.pinned:
                ordered[index], ordered[j] = ordered[j], ordered[index]
    _not_after_today(ordered, config.today)
    delivered: list[dict[str, Any]] = []
    for event in ordered:
        delivered.append(event)
        if rng.random() < config.duplicate_rate:
            delivered.append(event)
    cohort.events = delivered
    return cohort


def _not_after_today(events: list[dict[str, Any]], today: date) -> None:
    """Events dated `today` are stamped in the first four minutes of the day, in the same order, rather than
    at 08:00-18:00: a cohort made for today, sent at 01:00, must not hold event times in the future (ingest
    refuses those beyond five minutes of clock skew)."""
    for event in events:
        stamp = datetime.fromisoformat(event["time"])
        if stamp.date() >= today:
            minutes = (stamp - datetime.combine(stamp.date(), time(8, 0), UTC)).total_seconds() / 60
            event["time"] = (
                datetime.combine(today, time(0, 0), UTC) + timedelta(seconds=minutes * 0.4)
            ).isoformat()


def batches(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]


def renamed(
    events: list[dict[str, Any]], *, prefix: str = "", suffix: str = "", id_prefix: str = ""
) -> list[dict[str, Any]]:
    """Copies of the events with every provider renamed (prefix-provider-suffix) and, optionally, every event id
    prefixed: lets several streams share one Kafka without their providers or ids meeting."""
    out = []
    for event in events:
        e = copy.deepcopy(event)
        provider = f"{prefix}{e['source'].split('/', 1)[1]}{suffix}"
        e["source"] = f"provider/{provider}"
        if "provider_id" in e["data"]:
            e["data"]["provider_id"] = provider
        if id_prefix:
            e["id"] = f"{id_prefix}{e['id']}"
            if "retracted_event_id" in e["data"]:
                e["data"]["retracted_event_id"] = f"{id_prefix}{e['data']['retracted_event_id']}"
        out.append(e)
    return out
