"""Outcome contract definitions (INDIGO-like), as loaded from YAML or sent on `contracts.commands.v1`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .care import FreeText, IsoDate, ProviderId
from .catalogue import MEASURE_IDS, VERIFIABLE_MEASURE_IDS, register_fact_id
from .reference import is_municipality
from .registry import OrganisationNumber
from .vocabulary import CareType, LegalBasis, TargetGroup

# Amounts stay far inside a bigint and a JSON number any client reads exactly (2**53): 100 billion SEK.
MAX_AMOUNT_ORE = 10**13
Amount = Annotated[int, Field(gt=0, le=MAX_AMOUNT_ORE)]
# Enrolment windows are this century: a year 0070 or 7519 is a typo, not a contract.
EARLIEST_ENROLMENT, LATEST_ENROLMENT = date(2000, 1, 1), date(2099, 12, 31)


def _known_municipality(code: str) -> str:
    if not is_municipality(code):
        raise ValueError("not a Swedish municipality code (SCB)")
    return code


def _known_measure(measure_id: str) -> str:
    if measure_id not in MEASURE_IDS:
        raise ValueError(f"not a measure in the catalogue (one of {', '.join(MEASURE_IDS)})")
    return measure_id


def _enrolment_date(value: date) -> date:
    if not EARLIEST_ENROLMENT <= value <= LATEST_ENROLMENT:
        raise ValueError(f"must lie between {EARLIEST_ENROLMENT} and {LATEST_ENROLMENT}")
    return value


KnownMunicipality = Annotated[str, StringConstraints(pattern=r"^\d{4}$"), AfterValidator(_known_municipality)]
EnrolmentDate = Annotated[IsoDate, AfterValidator(_enrolment_date)]

ContractId = Annotated[str, StringConstraints(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9\-]+$")]


class CohortRuleV1(BaseModel):
    """Who is enrolled: every placement matching all of these (an empty list means any)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    care_types: list[CareType] = Field(default_factory=list)
    target_groups: list[TargetGroup] = Field(default_factory=list)
    legal_bases: list[LegalBasis] = Field(default_factory=list)
    municipalities: list[KnownMunicipality] = Field(default_factory=list, max_length=290)
    min_age: int = Field(0, ge=0, le=20)
    max_age: int = Field(20, ge=0, le=20)
    enrolment_from: EnrolmentDate
    enrolment_to: EnrolmentDate

    @model_validator(mode="after")
    def _ranges(self) -> CohortRuleV1:
        if self.min_age > self.max_age:
            raise ValueError("min_age must not exceed max_age")
        if self.enrolment_from > self.enrolment_to:
            raise ValueError("enrolment_from must not be after enrolment_to")
        return self


Validation = Literal["reported", "register"]


class MilestoneV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    milestone_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_\-]{1,64}$")]
    measure_id: Annotated[str, AfterValidator(_known_measure)]
    price_ore: Amount
    validation: Validation = Field(
        "reported",
        description="reported: paid on the outcome the provider's events give; register: paid only once a "
        "register covers the outcome and confirms it, reversed if a later register extract contradicts it",
    )

    @model_validator(mode="after")
    def _verifiable(self) -> MilestoneV1:
        if self.validation == "register" and self.measure_id not in VERIFIABLE_MEASURE_IDS:
            raise ValueError(f"registers verify only these measures: {', '.join(VERIFIABLE_MEASURE_IDS)}")
        return self

    @property
    def fact_measure_id(self) -> str:
        """The fact the milestone is paid on: the reported outcome, or the register's verified one."""
        return register_fact_id(self.measure_id) if self.validation == "register" else self.measure_id


PeppolParticipantId = Annotated[
    str,
    StringConstraints(pattern=r"^(0007|0088|0192|0208|9955):[A-Za-z0-9.\-]{1,50}$"),
    Field(
        description="A Peppol participant id, `<EAS scheme>:<id>`; for a Swedish organisation usually "
        "0007:<organisation number, ten digits>"
    ),
]


class InvoicingV1(BaseModel):
    """Who receives the contract's e-invoices (Peppol BIS Billing 3.0): the commissioning municipality as buyer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    buyer_name: Annotated[FreeText, StringConstraints(min_length=2, max_length=120, strip_whitespace=True)]
    buyer_organisation_number: OrganisationNumber
    buyer_peppol_id: PeppolParticipantId | None = Field(
        None, description="the buyer's Peppol address; when absent, 0007 and its organisation number"
    )
    buyer_reference: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\s].*$")] = (
        Field(description="the buyer's reference (BT-10) its finance system routes the invoice by")
    )
    payment_terms_days: int = Field(30, ge=0, le=90, description="days from the issue date to the due date")


class ContractDefinitionV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_id: ContractId
    name: Annotated[FreeText, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    commissioner_municipality: KnownMunicipality
    funder: Annotated[str, StringConstraints(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9\-]+$")]
    funder_name: (
        Annotated[FreeText, StringConstraints(min_length=2, max_length=200, strip_whitespace=True)] | None
    ) = Field(None, description="the funder's name as statements show it (the id when absent)")
    provider_ids: list[ProviderId] = Field(min_length=1, max_length=500)
    cohort: CohortRuleV1
    milestones: list[MilestoneV1] = Field(min_length=1, max_length=50)
    per_participant_cap_ore: Amount
    total_cap_ore: Amount
    currency: Literal["SEK"] = "SEK"
    statement_period: Literal["month", "quarter"] = Field(
        "quarter", description="how often payments are settled: one statement per month or per quarter"
    )
    invoicing: InvoicingV1 | None = Field(
        None, description="the buyer of the contract's e-invoices; without it, statements have no e-invoice"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ContractDefinitionV1:
        ids = [m.milestone_id for m in self.milestones]
        if len(ids) != len(set(ids)):
            raise ValueError("milestone_id values must be unique")
        if len(set(self.provider_ids)) != len(self.provider_ids):
            raise ValueError("provider_ids must be unique")
        if self.per_participant_cap_ore > self.total_cap_ore:
            raise ValueError("per_participant_cap_ore must not exceed total_cap_ore")
        return self
