"""`releases.v1` (compacted, keyed `release:<n>` and `release:<n>:<measure id>`, `<deployment>/` before them
when deployments share a Kafka): published releases of the open comparisons, frozen.

An operator publishes a release (`POST /v1/releases`): every public table of every current measure as of
one moment, disclosure-controlled across all the tables together, numbered 1, 2, 3 …. A release never
changes once published; the next one lists what changed against it. Each measure's tables are one record,
written before the release's manifest, so a reader that has the manifest has the whole release.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, StringConstraints
from pydantic_core import PydanticCustomError

from .auth import PersonV1
from .personnummer import looks_like_personnummer

TableName = Literal[
    "provider_year",
    "provider_all_years",
    "national_year",
    "national_all_years",
    "sex_year",
    "age_band_year",
    "target_group_year",
    # Published by releases before 2026-12 only (docs/architecture.md, Privacy): the care-type breakdown was
    # the providers' own figures under another name, and tables over all years tied every year's
    # suppression to every other's.
    "care_type_year",
]
BREAKDOWNS = ("sex", "age_band", "target_group")
RETIRED_TABLES = ("provider_all_years", "national_all_years", "care_type_year")
TABLES: tuple[str, ...] = tuple(t for t in get_args(TableName) if t not in RETIRED_TABLES)

Count = Annotated[int | None, Field(ge=0)]
Share = Annotated[float | None, Field(ge=0, le=1)]


class ReleasedCellV1(BaseModel):
    """One cell of a released table, as the open data files carry it. A suppressed cell has no number at all:
    every count, rate and interval is null."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    measure_id: str
    measure_version: int
    table: TableName
    source: Literal["events", "self_reported", "verified"] = Field(
        "events",
        description="events: from care events (as providers reported them); self_reported: providers' "
        "aggregated submissions; verified: decided against registers (a measure `<id>@register`)",
    )
    provider_id: str | None = Field(None, description="provider tables: the provider")
    breakdown: str | None = Field(None, description="breakdown tables: the dimension (sex, age_band, …)")
    breakdown_value: str | None = Field(None, description="breakdown tables: the dimension's value")
    discharge_year: int | None = Field(None, description="by-year tables: the discharge year")
    suppressed: bool = Field(
        description="true: too few episodes, or hidden so a small cell cannot be derived"
    )
    result: Literal["final", "preliminary"] | None = Field(
        None,
        description="final: every outcome window of the cohort has closed, and its outcomes are published; "
        "preliminary: not yet, and only its number of episodes and the share of windows closed are",
    )
    episodes: Count = Field(None, description="discharged episodes in the cell (closed and pending)")
    achieved: Count = None
    not_achieved: Count = None
    missing: Count = None
    pending: Count = None
    excluded: Count = Field(
        None, description="verified: excluded after a death or emigration the register holds"
    )
    unverified: Count = Field(None, description="verified: not covered by a register (yet)")
    closed: Count = None
    windows_closed_share: Share = None
    observed_rate: Share = None
    itt_rate: Share = None
    ci_low: Share = None
    ci_high: Share = None
    oe_ratio: Annotated[float | None, Field(ge=0)] = None
    oe_low: Annotated[float | None, Field(ge=0)] = None
    oe_high: Annotated[float | None, Field(ge=0)] = None
    funnel_label: Literal["higher", "lower", "no_different"] | None = None


class CellChangeV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str
    key: dict[str, str | int | None]
    change: Literal["added", "removed", "changed"]
    fields: list[str] = Field(default_factory=list, description="changed: the columns that differ")


class ReleasedMeasureV1(BaseModel):
    """Summary of one measure in a release's manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    measure_id: str
    measure_version: int
    cells: int
    suppressed_cells: int
    added: int
    removed: int
    changed: int


class ReleaseV1(BaseModel):
    """A release's manifest (key `release:<n>`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["release"] = "release"
    release: int = Field(ge=1)
    previous: int | None = Field(None, ge=1, description="the release the change list compares against")
    data_as_of: datetime = Field(description="the moment the figures were read (one consistent snapshot)")
    published_at: datetime
    published_by: str = Field(description="the operator key's label")
    note: str | None = Field(None, max_length=2000)
    min_cell: int = Field(ge=1)
    suppression: str = Field(
        description="how small cells are protected: primary below min_cell, complementary across all tables"
    )
    margin: int | None = Field(
        None,
        description="the protection margin: every suppressed small cell's feasible interval is at least this wide",
    )
    audit: dict[str, Any] | None = Field(
        None, description="the disclosure audit in figures: sensitive cells, attackers, narrowest interval"
    )
    measures: list[ReleasedMeasureV1]


class ReleaseMeasureV1(BaseModel):
    """One measure's tables in a release (key `release:<n>:<measure id>`): the open data (`tables`), the
    change list against the previous release, and the page's views of the same figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["release_measure"] = "release_measure"
    release: int = Field(ge=1)
    measure_id: str
    measure_version: int
    tables: dict[str, list[ReleasedCellV1]]
    changes: list[CellChangeV1]
    views: dict[str, Any] = Field(
        description="the page's views: comparisons by discharge year ('all': every year), national and "
        "per-provider rows by year, with the release's suppression applied"
    )


def _no_personnummer(value: str) -> str:
    if looks_like_personnummer(value):
        raise PydanticCustomError(
            "personnummer_in_text", "the text must not contain a personal identity number (it was not kept)"
        )
    return value


class AuditAtomV1(BaseModel):
    """One atom of a release's audit: the finest piece its tables are sums of, with its exact counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: list[str | int]
    version: int = Field(ge=1, description="the release since which the atom's counts have not changed")
    counts: dict[str, int]
    windows: dict[str, int] = Field(description="per measure: episodes whose outcome window has closed")


class ProviderShareV1(BaseModel):
    """A provider's own part of a breakdown atom: what that provider knows of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider_id: str
    key: list[str | int]
    counts: dict[str, int]


class ReleaseAuditV1(BaseModel):
    """What a release's disclosure audit saw (key `release:<n>:audit`): the exact counts behind its tables, so
    that the next release is suppressed against this one too. Never served: the gateway's principal alone
    reads `releases.v1`, and no route returns it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["release_audit"] = "release_audit"
    release: int = Field(ge=1)
    min_cell: int = Field(ge=1)
    margin: int = Field(ge=0)
    measures: list[list[str]] = Field(description="(measure id, measure id@version) of each measure")
    atoms: list[AuditAtomV1]
    shares: list[ProviderShareV1]
    figures: dict[str, Any] = Field(description="the audit in figures: cells, attackers, narrowest interval")


class ReleaseCommentV1(BaseModel):
    """A provider's factual correction or comment on the next release (key `comment:<id>`): operators see it
    before they publish, as inspectorates hear a provider before they publish."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["release_comment"] = "release_comment"
    comment_id: str
    provider_id: str
    key_id: str = Field(description="who signed in: the provider key's id, or person:<subject> for a person")
    person: PersonV1 | None = Field(
        None, description="the provider's staff member who wrote it, if signed in"
    )
    measure_id: str | None = Field(None, max_length=64)
    after_release: int | None = Field(None, description="the latest release when it was written")
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_no_personnummer)]
    created_at: datetime


class ReleaseRecordV1(
    RootModel[
        Annotated[
            ReleaseV1 | ReleaseMeasureV1 | ReleaseCommentV1 | ReleaseAuditV1, Field(discriminator="kind")
        ]
    ]
):
    """Any record of `releases.v1`."""


def key_prefix(deployment: str = "") -> str:
    """Releases belong to one deployment; deployments that share a Kafka (`UTFALL_INSTANCE`, as tests do) keep
    their releases apart by key."""
    return f"{deployment}/release:" if deployment else "release:"


def manifest_key(release: int, deployment: str = "") -> str:
    return f"{key_prefix(deployment)}{release}"


def measure_key(release: int, measure_id: str, deployment: str = "") -> str:
    return f"{key_prefix(deployment)}{release}:{measure_id}"


def audit_key(release: int, deployment: str = "") -> str:
    return f"{key_prefix(deployment)}{release}:audit"


def comment_key(comment_id: str, deployment: str = "") -> str:
    return f"{key_prefix(deployment)}comment:{comment_id}"
