"""Register extracts, checked as pure functions: an extract's header and each of its rows in, a
pseudonymised record or field-pointed reasons out; and which version of a row counts.

A row's personnummer is turned into the same subject_ref as a care event's (same key, same version), and
is dropped: nothing here keeps it beyond the call."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from utfall_events.auth import ApiKeyV1
from utfall_events.personnummer import InvalidPersonNumber, parse_person_number
from utfall_events.reference import is_municipality
from utfall_events.registers import (
    ROW_MODELS,
    RegisterCoverageDeclarationV1,
    RegisterExclusionRowV1,
    RegisterExtractV1,
    RegisterPlacementRowV1,
    RegisterStatusRowV1,
)

from .pseudonym import subject_ref
from .validation import EARLIEST_DATE, PseudonymKey, Reason, open_person_id, reasons_of

# The columns of a register CSV sheet: every kind's fields; a row fills those of its kind.
CSV_COLUMNS = (
    "record_id",
    "kind",
    "person_id",
    "start_date",
    "end_date",
    "care_type",
    "municipality_code",
    "provider_id",
    "on_date",
    "status",
    "reason",
)


@dataclass(frozen=True, slots=True)
class CheckedRecord:
    """A register row that passed: pseudonymised, its body as published (no personnummer)."""

    record_id: str
    kind: str
    subject_ref: str
    body: dict[str, Any]

    @property
    def digest(self) -> str:
        """What identifies the row's content: a resend with the same digest changes nothing."""
        payload = orjson.dumps([self.kind, self.subject_ref, self.body], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True, slots=True)
class RowRejection:
    row: int
    record_id: str | None
    reasons: tuple[Reason, ...]


def check_header(
    raw: Any, *, today: date, scope_municipality: str | None
) -> RegisterExtractV1 | list[Reason]:
    """The extract's own fields (its rows are checked one by one afterwards)."""
    try:
        extract = RegisterExtractV1.model_validate(raw)
    except ValidationError as exc:
        return [r for r in reasons_of(exc, "") if not r.field.startswith("/records/")]
    return (
        coverage_reasons(extract.as_of, extract.coverage, today=today, scope_municipality=scope_municipality)
        or extract
    )


def coverage_reasons(
    as_of: date, coverage: RegisterCoverageDeclarationV1, *, today: date, scope_municipality: str | None
) -> list[Reason]:
    reasons: list[Reason] = []
    if as_of > today:
        reasons.append(Reason("/as_of", "future_date", "the extract cannot be taken after today"))
    if coverage.covers_through > as_of:
        reasons.append(
            Reason(
                "/coverage/covers_through",
                "after_as_of",
                "an extract cannot vouch for days after it was taken (as_of)",
            )
        )
    if coverage.covers_from < EARLIEST_DATE:
        reasons.append(
            Reason("/coverage/covers_from", "before_2000", "dates before 2000-01-01 are not accepted")
        )
    for i, code in enumerate(coverage.municipalities):
        if not is_municipality(code):
            reasons.append(
                Reason(
                    f"/coverage/municipalities/{i}", "unknown_municipality", "not one of the 290 SCB codes"
                )
            )
        elif scope_municipality is not None and code != scope_municipality:
            reasons.append(
                Reason(
                    f"/coverage/municipalities/{i}",
                    "outside_scope",
                    "this register's key may only vouch for its own municipality",
                )
            )
    return reasons


def _pseudonym(person_text: str, pointer: str, *, key: PseudonymKey, today: date) -> str | Reason:
    opened = open_person_id(person_text, key, pointer)
    if isinstance(opened, Reason):
        return opened
    try:
        person = parse_person_number(opened, today=today)
    except InvalidPersonNumber as exc:
        return Reason(pointer, exc.code, exc.message)
    return subject_ref(person.digits, key=key.secret, version=key.version)


def _day_reasons(pointer: str, value: date | None, latest: date) -> list[Reason]:
    if value is None:
        return []
    if value < EARLIEST_DATE:
        return [Reason(pointer, "before_2000", "dates before 2000-01-01 are not accepted")]
    if value > latest:
        return [Reason(pointer, "after_as_of", "the row is dated after the extract was taken (as_of)")]
    return []


def check_row(
    raw: Any, *, key: PseudonymKey, as_of: date, today: date, pointer: str
) -> CheckedRecord | list[Reason]:
    """One row: its kind's model, a personnummer that parses (or opens), dates not after the extract."""
    kind = raw.get("kind") if isinstance(raw, dict) else None
    if kind not in ROW_MODELS:
        return [Reason(f"{pointer}/kind", "unknown_kind", "kind must be placement, status or exclusion")]
    try:
        row = ROW_MODELS[kind].model_validate(raw)
    except ValidationError as exc:
        return reasons_of(exc, pointer)
    reasons: list[Reason] = []
    subject = _pseudonym(row.person_id, f"{pointer}/person_id", key=key, today=today)
    if isinstance(subject, Reason):
        reasons.append(subject)
    latest = min(as_of, today)
    body: dict[str, Any]
    if isinstance(row, RegisterPlacementRowV1):
        reasons += _day_reasons(f"{pointer}/start_date", row.start_date, latest)
        reasons += _day_reasons(f"{pointer}/end_date", row.end_date, latest)
        if not is_municipality(row.municipality_code):
            reasons.append(
                Reason(f"{pointer}/municipality_code", "unknown_municipality", "not one of the 290 SCB codes")
            )
        body = row.model_dump(
            mode="json", include={"start_date", "end_date", "care_type", "municipality_code", "provider_id"}
        )
    elif isinstance(row, RegisterStatusRowV1):
        reasons += _day_reasons(f"{pointer}/on_date", row.on_date, latest)
        body = row.model_dump(mode="json", include={"on_date", "status"})
    else:
        assert isinstance(row, RegisterExclusionRowV1)
        reasons += _day_reasons(f"{pointer}/on_date", row.on_date, latest)
        body = row.model_dump(mode="json", include={"on_date", "reason"})
    if reasons or isinstance(subject, Reason):
        return reasons
    return CheckedRecord(row.record_id, row.kind, subject, body)


def parse_csv(text: str) -> tuple[list[dict[str, Any]], list[RowRejection]]:
    """Rows of a register CSV sheet (a header line naming its columns, any order, a subset of CSV_COLUMNS);
    empty cells are absent fields. A header naming unknown columns refuses the sheet (row 0)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    missing = [c for c in ("record_id", "kind", "person_id") if c not in header]
    if unknown or missing:
        reasons = [Reason(f"/header/{c}", "missing_column", "required column is missing") for c in missing]
        reasons += (
            [Reason("/header", "unknown_column", f"unknown column (columns: {', '.join(CSV_COLUMNS)})")]
            if unknown
            else []
        )
        return [], [RowRejection(0, None, tuple(reasons))]
    rows: list[dict[str, Any]] = []
    for record in reader:
        # an empty cell is an absent field: a row fills its own kind's columns, the model names what is wrong
        rows.append({k.strip(): v.strip() for k, v in record.items() if k is not None and v and v.strip()})
    return rows, []


Receipt = Literal["accepted", "correction", "duplicate", "unchanged", "superseded", "conflict"]


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A version of one row ingest has seen: which extract sent it, when that was taken, its content."""

    extract_id: str
    as_of: date
    digest: str

    @property
    def precedence(self) -> tuple[date, str]:
        return (self.as_of, self.extract_id)


def receipt_for(versions: Iterable[StoredVersion], new: StoredVersion) -> Receipt:
    """What a row's new version is, against every version of it seen before:
    - duplicate: this extract sent this row before, with the same content;
    - conflict: this extract sent this row before with other content (refused: one extract holds a row once,
      and which of two parts arrived first must not decide what counts);
    - superseded: a later extract's version already counts, so this one never will;
    - unchanged: the version that counts until now has the same content;
    - correction: it changes what counts; accepted: the row's first version."""
    versions = list(versions)
    same_extract = [v for v in versions if v.extract_id == new.extract_id]
    if same_extract:
        return "duplicate" if any(v.digest == new.digest for v in same_extract) else "conflict"
    if not versions:
        return "accepted"
    current = max(versions, key=lambda v: v.precedence)
    if current.precedence > new.precedence:
        return "superseded"
    return "unchanged" if current.digest == new.digest else "correction"


RECEIPT_WORDS: dict[str, str] = {
    "accepted": "Taken: the row is new.",
    "correction": "Taken as a correction: it supersedes the earlier version of this row.",
    "duplicate": "Already received in this extract; nothing changed.",
    "unchanged": "The same as the version that counts; nothing changed.",
    "superseded": "Kept, but a version of this row from a later extract counts.",
    "rejected": "Refused: see the reasons. The other rows are not affected.",
}


def conflict_reason(pointer: str, record_id: str) -> Reason:
    return Reason(
        pointer,
        "conflict",
        f"Record {record_id} was sent before in this extract with other content; an extract holds each row "
        "once. The version received first is kept: send a correction in a new extract.",
    )


@dataclass(frozen=True, slots=True)
class RegisterScope:
    """Which municipalities a register may vouch for: None is every one (a national register)."""

    municipality_code: str | None


def register_scope(keys: Iterable[ApiKeyV1], register_id: str) -> RegisterScope | str:
    """A register is known by its active keys (a register producing to Kafka has one as well): their scope is
    its scope. The reason in words when the register is unknown or its keys disagree."""
    active = [
        k for k in keys if k.role == "register" and k.register_id == register_id and k.revoked_at is None
    ]
    if not active:
        return f"Register {register_id} has no active key: it is not known to Utfall."
    if any(k.municipality_code is None for k in active):
        return RegisterScope(None)
    codes = {k.municipality_code for k in active}
    if len(codes) > 1:
        return f"Register {register_id}'s keys are scoped to different municipalities: give it one scope."
    return RegisterScope(codes.pop())
