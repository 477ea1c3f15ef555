"""The measure catalogue, as data: changing a definition means adding a new version here.

Each measure names a rule kind (a small pure function in `facts.py`) and its parameters. Titles and
definitions are in Swedish and English, as published by the gateway.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

RuleKind = Literal[
    "end_reason_in", "destination_in", "no_replacement", "followup_bool", "followup_living", "followup_exists"
]


@dataclass(frozen=True, slots=True)
class MeasureDefinition:
    id: str
    version: int
    kind: RuleKind
    title_sv: str
    title_en: str
    definition_sv: str
    definition_en: str
    source_fields: tuple[str, ...]
    window_months: int | None = None
    grace_days: int = 60
    achieved_values: frozenset[str] = field(default_factory=frozenset)
    not_achieved_values: frozenset[str] = field(default_factory=frozenset)
    followup_field: str | None = None

    @property
    def has_window(self) -> bool:
        return self.window_months is not None


HOME_LIKE = frozenset({"parents", "relatives", "own_housing", "supported_housing"})


def _no_replacement(months: int) -> MeasureDefinition:
    return MeasureDefinition(
        id=f"no_replacement_{months}m",
        version=1,
        kind="no_replacement",
        title_sv=f"Ingen ny placering inom {months} månader",
        title_en=f"No re-placement within {months} months",
        definition_sv=(
            f"Uppnått när uppföljningen efter {months} månader svarar att den unge inte placerats igen och inget "
            f"talar emot. Ej uppnått när en ny placering (alla vårdformer utom öppenvård, hos vilken utförare som "
            f"helst) börjar efter utskrivningsdagen och inom {months} månader, eller när en uppföljning efter "
            f"{months} månader eller tidigare svarar ja. Väntande tills fönstret plus 60 dagar har passerat, "
            f"sedan saknas."
        ),
        definition_en=(
            f"Achieved when the {months}-month follow-up answers that the young person has not been placed again "
            f"and there is no evidence against. Not achieved when a new out-of-home placement (any care type but "
            f"outpatient, any provider) starts after the end date and within {months} months of it, or any "
            f"follow-up of that month or earlier answers yes. Pending until the window plus 60 days grace has "
            f"passed, then missing."
        ),
        source_fields=("end_date", "followup.replaced_since_discharge", "placement.start_date", "care_type"),
        window_months=months,
    )


CATALOGUE: tuple[MeasureDefinition, ...] = (
    MeasureDefinition(
        id="planned_discharge",
        version=1,
        kind="end_reason_in",
        title_sv="Planerad utskrivning",
        title_en="Planned discharge",
        definition_sv="Uppnått när placeringen avslutas planerat; varje annat avslutsskäl är ej uppnått.",
        definition_en="Achieved when the placement ends as planned; any other end reason is not achieved.",
        source_fields=("end_reason",),
        achieved_values=frozenset({"planned"}),
    ),
    MeasureDefinition(
        id="less_intensive_after",
        version=1,
        kind="destination_in",
        title_sv="Mindre ingripande boende efter utskrivning",
        title_en="Less intensive living after discharge",
        definition_sv=(
            "Uppnått när den unge flyttar till föräldrar, släktingar, eget boende, stödboende eller familjehem; "
            "varje annan destination (även okänd) är ej uppnått."
        ),
        definition_en=(
            "Achieved when the destination is parents, relatives, own housing, supported housing or a family "
            "home; any other destination (unknown included) is not achieved."
        ),
        source_fields=("destination",),
        achieved_values=frozenset(
            {"parents", "relatives", "own_housing", "supported_housing", "family_home"}
        ),
    ),
    _no_replacement(6),
    _no_replacement(12),
    _no_replacement(24),
    MeasureDefinition(
        id="education_or_work_12m",
        version=1,
        kind="followup_bool",
        title_sv="Studier eller arbete efter 12 månader",
        title_en="In education or work at 12 months",
        definition_sv=(
            "Uppnått när 12-månadersuppföljningen svarar ja på studier eller arbete, ej uppnått vid nej. Väntande "
            "tills fönstret plus 60 dagar har passerat, sedan saknas (ett okänt svar räknas som inget svar)."
        ),
        definition_en=(
            "Achieved when the 12-month follow-up answers in_education_or_work = true, not achieved when false. "
            "Pending, then missing once the window plus 60 days has passed (a null answer counts as no answer)."
        ),
        source_fields=("followup.in_education_or_work",),
        window_months=12,
        followup_field="in_education_or_work",
    ),
    MeasureDefinition(
        id="living_at_home_12m",
        version=1,
        kind="followup_living",
        title_sv="Boende hemma efter 12 månader",
        title_en="Living at home at 12 months",
        definition_sv=(
            "Uppnått när 12-månadersuppföljningen anger föräldrar, släktingar, eget boende eller stödboende; ej "
            "uppnått vid familjehem eller institution. Väntande, sedan saknas (okänt räknas som inget svar)."
        ),
        definition_en=(
            "Achieved when the 12-month follow-up's living situation is parents, relatives, own housing or "
            "supported housing; not achieved for a family home or institution. Pending, then missing (unknown "
            "counts as no answer)."
        ),
        source_fields=("followup.living_situation",),
        window_months=12,
        achieved_values=HOME_LIKE,
        not_achieved_values=frozenset({"family_home", "institution"}),
    ),
    MeasureDefinition(
        id="followup_coverage_12m",
        version=1,
        kind="followup_exists",
        title_sv="Uppföljning gjord efter 12 månader",
        title_en="12-month follow-up recorded",
        definition_sv=(
            "Uppnått när en 12-månadersuppföljning finns; ej uppnått när ingen finns då fönstret plus 60 dagar har "
            "passerat; annars väntande."
        ),
        definition_en=(
            "Achieved when a 12-month follow-up exists; not achieved when none exists once the window plus 60 "
            "days has passed; pending otherwise."
        ),
        source_fields=("followup.followup_month",),
        window_months=12,
    ),
)

BY_ID: dict[str, MeasureDefinition] = {m.id: m for m in CATALOGUE}
MEASURE_IDS: tuple[str, ...] = tuple(BY_ID)


def verifiable(measure: MeasureDefinition) -> bool:
    """Whether registers can verify the measure (a re-placement anywhere; school or work status on a date)."""
    return measure.kind == "no_replacement" or (
        measure.kind == "followup_bool" and measure.followup_field == "in_education_or_work"
    )


VERIFIABLE_MEASURE_IDS: tuple[str, ...] = tuple(m.id for m in CATALOGUE if verifiable(m))
# A verified outcome travels on outcomes.v2 as a fact of its own: the measure id with this suffix. It exists only
# once the registers decided it (achieved, not achieved or excluded); an outcome they do not cover has none.
REGISTER_SUFFIX = "@register"


def register_fact_id(measure_id: str) -> str:
    return measure_id + REGISTER_SUFFIX


def measure_of_fact(fact_measure_id: str) -> str:
    """The catalogue measure a fact is of (a verified fact's id carries REGISTER_SUFFIX)."""
    return fact_measure_id.removesuffix(REGISTER_SUFFIX)


def is_register_fact_id(measure_id: str) -> bool:
    return measure_id.endswith(REGISTER_SUFFIX)


_VERIFIED_DEFINITIONS: dict[str, tuple[str, str]] = {
    "no_replacement": (
        "Som det rapporterade måttet, men avgjort mot register: ej uppnått när en placering var som helst (även "
        "hos en utförare utanför Utfall) börjar inom fönstret; uppnått när ingen gjorde det och registren täcker "
        "den placerande kommunens placeringar varje dag i fönstret; uteslutet efter dödsfall eller utvandring; "
        "annars ej verifierat.",
        "As the reported measure, but decided against registers: not achieved when a placement anywhere (also "
        "with a provider not on Utfall) starts within the window; achieved when none did and the registers "
        "cover the placing municipality's placements for every day of the window; excluded after a death or "
        "emigration; otherwise unverified.",
    ),
    "followup_bool": (
        "Avgjort av registrets status närmast uppföljningsdagen (12 månader efter avslut), från 92 dagar före "
        "till 60 dagar efter: studier, fullföljd gymnasieutbildning eller arbete är uppnått, inget av dem ej "
        "uppnått; uteslutet efter dödsfall eller utvandring; ingen status i det spannet är ej verifierat.",
        "Decided by the register's status nearest the follow-up date (12 months after discharge), from 92 days "
        "before it to 60 days after: enrolled, completed upper secondary or employed is achieved, none of them "
        "not achieved; excluded after a death or emigration; no status in that span is unverified.",
    ),
}


def verified_definition(measure: MeasureDefinition) -> MeasureDefinition:
    """A verifiable measure as decided against registers, published as a measure of its own
    (`<id>@register`, the id its facts carry): the same episodes and window, counted achieved, not achieved,
    excluded and unverified."""
    sv, en = _VERIFIED_DEFINITIONS[measure.kind]
    return dataclasses.replace(
        measure,
        id=register_fact_id(measure.id),
        title_sv=f"{measure.title_sv}, verifierat mot register",
        title_en=f"{measure.title_en}, verified against registers",
        definition_sv=sv,
        definition_en=en,
    )


VERIFIED_CATALOGUE: tuple[MeasureDefinition, ...] = tuple(
    verified_definition(m) for m in CATALOGUE if verifiable(m)
)


# Earlier versions of definitions stay valid to name (aggregated submissions measured by them); none yet.
RETIRED: tuple[MeasureDefinition, ...] = ()


def known_version(measure_id: str, version: int) -> bool:
    return any(m.id == measure_id and m.version == version for m in (*CATALOGUE, *RETIRED))
