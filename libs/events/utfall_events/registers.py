"""Register extracts: a second source of outcomes that the providers do not control.

A register holder (a municipality's social services register, or a national one) sends extracts: rows of
placements (with any provider, on Utfall or not), school and work status on a date, and exclusions (death,
emigration), each extract with the coverage it vouches for (which municipalities, from when through which
day it is complete). Inbound rows (`Register*RowV1`) carry the personnummer; ingest publishes them on
`registers.v1` pseudonymised (`RegisterRecordV1`, keyed by subject_ref) with the same key as care events, so
register rows and events of one person share one subject_ref.

A row is identified by (register, record id). The same row sent again with other content is a correction:
among the versions of one row, the one from the extract with the latest `as_of` (then the greatest extract
id) counts, whichever arrived first, so the verified facts never depend on arrival order.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .care import (
    EPISODE_ID,
    PROVIDER_ID,
    IsoDate,
    MunicipalityCode,
    PersonId,
    ProviderId,
    SubjectRef,
    _not_a_personnummer,
)
from .vocabulary import CareType

RegisterId = Annotated[str, PROVIDER_ID.constraints()]
RecordId = Annotated[str, EPISODE_ID.constraints(), AfterValidator(_not_a_personnummer)]
ExtractId = RecordId
RecordKind = Literal["placement", "status", "exclusion"]
RECORD_KINDS: tuple[RecordKind, ...] = ("placement", "status", "exclusion")
SchoolWorkStatus = Literal["enrolled", "completed", "employed", "none"]
# enrolled in education, completed upper secondary education, employed: each counts as in education or work
IN_EDUCATION_OR_WORK: frozenset[str] = frozenset({"enrolled", "completed", "employed"})
ExclusionReason = Literal["death", "emigration"]

RECORD_TYPE: Final = "se.utfall.register.record.v1"
COVERAGE_TYPE: Final = "se.utfall.register.coverage.v1"


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    record_id: RecordId = Field(description="The register's own id of the row: a row sent again supersedes")
    person_id: PersonId


class RegisterPlacementRowV1(_Row):
    """An out-of-home placement as the register holds it, with any provider (registered on Utfall or not)."""

    kind: Literal["placement"]
    start_date: IsoDate
    end_date: IsoDate | None = None
    care_type: CareType
    municipality_code: MunicipalityCode = Field(description="SCB code of the placing municipality")
    provider_id: ProviderId | None = Field(None, description="The provider's id on Utfall, when it has one")

    @model_validator(mode="after")
    def _ends_after_start(self) -> RegisterPlacementRowV1:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        return self


class RegisterStatusRowV1(_Row):
    """The person's school and work status on a date."""

    kind: Literal["status"]
    on_date: IsoDate
    status: SchoolWorkStatus


class RegisterExclusionRowV1(_Row):
    """A death or an emigration: outcomes after it are excluded, not missed."""

    kind: Literal["exclusion"]
    on_date: IsoDate
    reason: ExclusionReason


RegisterRowV1 = Annotated[
    RegisterPlacementRowV1 | RegisterStatusRowV1 | RegisterExclusionRowV1, Field(discriminator="kind")
]
ROW_MODELS: dict[str, type[_Row]] = {
    "placement": RegisterPlacementRowV1,
    "status": RegisterStatusRowV1,
    "exclusion": RegisterExclusionRowV1,
}


class RegisterCoverageDeclarationV1(BaseModel):
    """What an extract vouches for: for these municipalities and these kinds of rows, the register holds every
    row from `covers_from` through `covers_through`. An outcome is verified only inside what is covered
    (placements: the absence of a re-placement means none happened); a status verifies its own date only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    municipalities: list[MunicipalityCode] = Field(min_length=1, max_length=290)
    kinds: list[RecordKind] = Field(min_length=1, max_length=3)
    covers_from: IsoDate
    covers_through: IsoDate

    @model_validator(mode="after")
    def _ordered(self) -> RegisterCoverageDeclarationV1:
        if self.covers_through < self.covers_from:
            raise ValueError("covers_through must not be before covers_from")
        return self


class RegisterExtractV1(BaseModel):
    """One extract as a register holder sends it over HTTP as JSON (CSV: the same fields, the coverage in the
    query string). `records` are validated row by row: a bad row is refused with its reasons beside the
    good ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    extract_id: ExtractId
    as_of: IsoDate = Field(description="The day the extract was taken: a later extract's rows supersede")
    coverage: RegisterCoverageDeclarationV1
    records: list[Any] = Field(max_length=100_000, description="the rows: Register*RowV1 objects")


# --- published on registers.v1 (no personnummer) -----------------------------------------------------


class RegisterPlacementV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_date: date
    end_date: date | None = None
    care_type: CareType
    municipality_code: MunicipalityCode
    provider_id: ProviderId | None = None


class RegisterStatusV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on_date: date
    status: SchoolWorkStatus


class RegisterExclusionV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on_date: date
    reason: ExclusionReason


class RegisterRecordV1(BaseModel):
    """One register row on `registers.v1`, keyed by subject_ref: pseudonymised, versioned by its extract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["se.utfall.register.record.v1"] = RECORD_TYPE
    register_id: RegisterId
    record_id: RecordId
    extract_id: ExtractId
    as_of: date
    subject_ref: SubjectRef
    kind: RecordKind
    placement: RegisterPlacementV1 | None = None
    status: RegisterStatusV1 | None = None
    exclusion: RegisterExclusionV1 | None = None
    received_at: datetime

    @model_validator(mode="after")
    def _one_body(self) -> RegisterRecordV1:
        bodies = {"placement": self.placement, "status": self.status, "exclusion": self.exclusion}
        if bodies[self.kind] is None or any(v is not None for k, v in bodies.items() if k != self.kind):
            raise ValueError("a record holds exactly the body its kind names")
        return self

    @property
    def precedence(self) -> tuple[date, str]:
        """Among versions of one row, the greatest counts."""
        return (self.as_of, self.extract_id)


class RegisterCoverageV1(BaseModel):
    """An extract's coverage on `registers.v1`, keyed by the register id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["se.utfall.register.coverage.v1"] = COVERAGE_TYPE
    register_id: RegisterId
    extract_id: ExtractId
    as_of: date
    municipalities: list[MunicipalityCode]
    kinds: list[RecordKind]
    covers_from: date
    covers_through: date
    received_at: datetime


# --- answered to the register holder (no personnummer) ---------------------------------------------


RECEIPTS_TYPE: Final = "se.utfall.register.receipts.v1"
ReceiptStatus = Literal["accepted", "correction", "duplicate", "unchanged", "superseded", "rejected"]


class RegisterRowReceiptV1(BaseModel):
    """What became of one row of an extract, in words; a refused row carries its reasons."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    row: int = Field(description="1-based row of the extract part (0: the sheet itself)")
    record_id: str | None
    status: ReceiptStatus
    detail: str
    reasons: list[dict[str, str]] | None = None


class RegisterReceiptsV1(BaseModel):
    """Receipts of one extract part sent over Kafka, on the register's own `registers.receipts.v1.<id>`:
    counts of every status, and a receipt for each refused row (the others are in the counts). A part that
    could not be read at all is answered with `problem` (RFC 9457 fields) and nothing was taken from it.
    A long list of refusals is split over several messages (`chunk` of `chunks`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["se.utfall.register.receipts.v1"] = RECEIPTS_TYPE
    register_id: RegisterId
    position: str = Field(description="topic/partition/offset of the part answered")
    extract_id: str | None = Field(description="the part's extract, when it could be read")
    complete: bool
    coverage_published: bool
    counts: dict[str, int]
    receipts: list[RegisterRowReceiptV1]
    problem: dict[str, Any] | None = None
    chunk: int = 1
    chunks: int = 1
    received_at: datetime


RegisterMessageV1 = Annotated[RegisterRecordV1 | RegisterCoverageV1, Field(discriminator="type")]

__all__ = [
    "COVERAGE_TYPE",
    "IN_EDUCATION_OR_WORK",
    "RECORD_KINDS",
    "RECORD_TYPE",
    "ROW_MODELS",
    "RegisterCoverageDeclarationV1",
    "RegisterCoverageV1",
    "RegisterExtractV1",
    "RegisterMessageV1",
    "RegisterReceiptsV1",
    "RegisterRecordV1",
    "RegisterRowReceiptV1",
    "RegisterRowV1",
]
