"""Register extracts and verified outcomes as pure functions: rows checked and pseudonymised, which version of
a row counts in any arrival order, each verification rule pinned, and verified facts independent of order."""

from __future__ import annotations

import json
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utfall_events.personnummer import find_personnummer
from utfall_events.registers import RegisterExtractV1
from utfall_events.schemas import schema_dir
from utfall_gateway.domain.agreement import VerifiedRow, agreement, by_provider, disagreements
from utfall_ingest.domain.registers import (
    CheckedRecord,
    StoredVersion,
    check_header,
    check_row,
    conflict_reason,
    parse_csv,
    receipt_for,
)
from utfall_ingest.domain.validation import PseudonymKey
from utfall_measures.domain.catalogue import BY_ID
from utfall_measures.domain.episodes import fold_episodes
from utfall_measures.domain.facts import facts_for_subject
from utfall_measures.domain.verification import (
    Coverage,
    CoverageClaim,
    RegisterRecord,
    current_records,
    verified_for_subject,
)

from .test_measures import SUBJECT, end, follow, start

EXAMPLES = Path(str(resources.files("utfall_events").joinpath("examples"))) / "registers"
KEY = PseudonymKey("v1", b"test-key")
TODAY = date(2026, 6, 1)
PERSON = "200804122380"


# --- ingest: rows in, pseudonymised records or reasons out ------------------------------------------------


def test_the_golden_extract_validates_against_its_schema_and_every_row_passes() -> None:
    extract = json.loads((EXAMPLES / "extract.json").read_text())
    jsonschema.validate(extract, json.loads((schema_dir() / "RegisterExtractV1.json").read_text()))
    header = check_header(extract, today=TODAY, scope_municipality=None)
    assert isinstance(header, RegisterExtractV1)
    names = {
        "placement": "RegisterPlacementRowV1",
        "status": "RegisterStatusRowV1",
        "exclusion": "RegisterExclusionRowV1",
    }
    for i, row in enumerate(header.records):
        jsonschema.validate(row, json.loads((schema_dir() / f"{names[row['kind']]}.json").read_text()))
        checked = check_row(row, key=KEY, as_of=header.as_of, today=TODAY, pointer=f"/records/{i}")
        assert isinstance(checked, CheckedRecord), checked
        assert checked.subject_ref.startswith("v1:")
        assert not find_personnummer(json.dumps(checked.body)), "the published body holds no personnummer"


def test_the_golden_csv_reads_as_the_json_extract() -> None:
    rows, rejected = parse_csv((EXAMPLES / "extract.csv").read_text())
    assert rejected == []
    as_json = json.loads((EXAMPLES / "extract.json").read_text())["records"]
    checked = [check_row(r, key=KEY, as_of=date(2026, 3, 31), today=TODAY, pointer="") for r in rows]
    expected = [check_row(r, key=KEY, as_of=date(2026, 3, 31), today=TODAY, pointer="") for r in as_json]
    assert checked == expected and all(isinstance(c, CheckedRecord) for c in checked)


def test_a_row_and_a_care_event_of_one_person_share_a_subject_ref() -> None:
    from utfall_ingest.domain.pseudonym import subject_ref

    row = {
        "record_id": "r1",
        "kind": "status",
        "person_id": "20080412-2380",
        "on_date": "2025-01-01",
        "status": "none",
    }
    checked = check_row(row, key=KEY, as_of=TODAY, today=TODAY, pointer="")
    assert isinstance(checked, CheckedRecord)
    assert checked.subject_ref == subject_ref(PERSON, key=KEY.secret, version="v1")


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ({"record_id": "r1", "kind": "visit", "person_id": PERSON}, "unknown_kind"),
        (
            {
                "record_id": "r1",
                "kind": "status",
                "person_id": "200804122381",
                "on_date": "2025-01-01",
                "status": "none",
            },
            "checksum",
        ),
        (
            {
                "record_id": "r1",
                "kind": "status",
                "person_id": PERSON,
                "on_date": "2026-05-01",
                "status": "none",
            },
            "after_as_of",
        ),
        (
            {
                "record_id": "r1",
                "kind": "status",
                "person_id": PERSON,
                "on_date": "2025-01-01",
                "status": "asleep",
            },
            "literal_error",
        ),
        (
            {
                "record_id": "r1",
                "kind": "placement",
                "person_id": PERSON,
                "start_date": "2025-01-01",
                "care_type": "hvb",
                "municipality_code": "9999",
            },
            "unknown_municipality",
        ),
        (
            {
                "record_id": "r1",
                "kind": "placement",
                "person_id": PERSON,
                "start_date": "2025-01-01",
                "end_date": "2024-01-01",
                "care_type": "hvb",
                "municipality_code": "0180",
            },
            "value_error",
        ),
        (
            {
                "record_id": "200804122380",
                "kind": "exclusion",
                "person_id": PERSON,
                "on_date": "2025-01-01",
                "reason": "death",
            },
            "personnummer_in_identifier",
        ),
        (
            {
                "record_id": "r1",
                "kind": "exclusion",
                "person_id": PERSON,
                "on_date": "2025-01-01",
                "reason": "death",
                "x": 1,
            },
            "extra_forbidden",
        ),
    ],
)
def test_a_bad_row_gets_its_reason_and_never_its_personnummer(row: dict[str, Any], code: str) -> None:
    result = check_row(row, key=KEY, as_of=date(2026, 3, 31), today=TODAY, pointer="/records/3")
    assert isinstance(result, list)
    assert code in {r.code for r in result}, result
    assert all(r.field.startswith("/records/3") for r in result)
    assert not find_personnummer(json.dumps([r.as_dict() for r in result]))


def test_a_header_that_vouches_beyond_its_day_or_scope_is_refused() -> None:
    extract = json.loads((EXAMPLES / "extract.json").read_text())
    extract["coverage"]["covers_through"] = "2026-04-30"
    reasons = check_header(extract, today=TODAY, scope_municipality="0181")
    assert isinstance(reasons, list)
    assert {r.code for r in reasons} == {"after_as_of", "outside_scope"}


def test_one_malformed_row_does_not_sink_the_header() -> None:
    extract = json.loads((EXAMPLES / "extract.json").read_text())
    extract["records"].append("not an object")
    header = check_header(extract, today=TODAY, scope_municipality=None)
    assert isinstance(header, RegisterExtractV1) and len(header.records) == 4


def test_a_csv_sheet_with_unknown_columns_is_refused_as_a_whole() -> None:
    rows, rejected = parse_csv("record_id,kind,person_id,shoe_size\nr1,status,x,42\n")
    assert rows == [] and rejected[0].row == 0 and rejected[0].reasons[0].code == "unknown_column"


versions = st.lists(
    st.tuples(
        st.sampled_from(["e1", "e2", "e3", "e4"]),  # extract id
        st.integers(0, 3),  # as_of offset
        st.sampled_from(["X", "Y", "Z"]),  # content
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(versions, st.randoms(use_true_random=False))
def test_the_content_that_counts_is_the_latest_extracts_in_any_arrival_order(
    sent: list[tuple[str, int, str]], rng: Any
) -> None:
    """Ingest publishes a version only when it changes what counts; measures keeps the greatest precedence of
    what was published. Whatever the order of extracts (and resends), that is the latest extract's content."""
    by_extract: dict[str, StoredVersion] = {}
    for extract, offset, content in sent:
        by_extract.setdefault(
            extract, StoredVersion(extract, date(2026, 1, 1) + timedelta(days=offset), content)
        )
    truth = max(by_extract.values(), key=lambda v: v.precedence).digest
    arrivals = [by_extract[e] for e, _, _ in sent]  # an extract may be sent again, unchanged
    rng.shuffle(arrivals)
    seen: list[StoredVersion] = []
    published: list[StoredVersion] = []
    for version in arrivals:
        if any(v.extract_id == version.extract_id for v in seen):
            assert receipt_for(seen, version) == "duplicate"
            continue
        if receipt_for(seen, version) in ("accepted", "correction"):
            published.append(version)
        seen.append(version)
    assert max(published, key=lambda v: v.precedence).digest == truth


def test_a_row_sent_twice_in_one_extract_with_other_content_is_a_conflict_not_a_duplicate() -> None:
    first = StoredVersion("x1", date(2026, 1, 1), "aaa")
    assert receipt_for([first], StoredVersion("x1", date(2026, 1, 1), "aaa")) == "duplicate"
    assert receipt_for([first], StoredVersion("x1", date(2026, 1, 1), "bbb")) == "conflict"
    # another extract's version of the row is a correction, as before
    assert receipt_for([first], StoredVersion("x2", date(2026, 2, 1), "bbb")) == "correction"
    reason = conflict_reason("/records/3/record_id", "r-17")
    assert reason.code == "conflict" and "r-17" in reason.message and "new extract" in reason.message


# --- measures: verification rules -------------------------------------------------------------------------

END = date(2024, 1, 31)


def record(
    kind: str, body: dict[str, Any], *, rid: str = "r1", extract: str = "x1", as_of: date = date(2026, 1, 1)
) -> RegisterRecord:
    return RegisterRecord("reg", rid, extract, as_of, SUBJECT, kind, body)


def covered(
    first: date = date(2020, 1, 1), through: date = date(2026, 1, 1), municipality: str = "0180"
) -> Coverage:
    return Coverage((CoverageClaim("reg", "x1", municipality, "placement", first, through),))


def verified(
    events: list[Any], records: list[RegisterRecord], coverage: Coverage, today: date = TODAY
) -> dict[str, tuple[str, str]]:
    episodes = list(fold_episodes(events).values())
    reported = facts_for_subject(episodes, today)
    out = verified_for_subject(episodes, records, coverage, reported)
    return {m: (f.status, f.reported_status) for (key, m), f in out.items() if key[1] == "ep1"}


def test_a_replacement_outside_utfall_makes_no_replacement_not_achieved_though_the_provider_said_no() -> None:
    events = [start(), end(day=END.isoformat()), follow(replaced=False, day="2025-02-05")]
    elsewhere = record(
        "placement", {"start_date": "2024-05-01", "care_type": "hvb", "municipality_code": "0180"}
    )
    out = verified(events, [elsewhere], covered())
    assert out["no_replacement_6m"] == ("not_achieved", "missing")
    assert out["no_replacement_12m"] == ("not_achieved", "achieved")
    assert out["no_replacement_24m"][0] == "not_achieved"


def test_no_replacement_is_achieved_only_where_the_register_covers_every_day_of_the_window() -> None:
    events = [start(), end(day=END.isoformat())]
    assert verified(events, [], covered())["no_replacement_12m"][0] == "achieved"
    assert verified(events, [], covered(through=date(2025, 1, 30)))["no_replacement_12m"][0] == "unverified"
    assert verified(events, [], covered(through=date(2025, 1, 31)))["no_replacement_12m"][0] == "achieved"
    assert verified(events, [], covered(first=date(2024, 2, 2)))["no_replacement_12m"][0] == "unverified"
    assert verified(events, [], covered(municipality="0181"))["no_replacement_12m"][0] == "unverified"
    two_extracts = Coverage(
        (
            CoverageClaim("reg", "x1", "0180", "placement", date(2020, 1, 1), date(2024, 6, 30)),
            CoverageClaim("other", "y1", "0180", "placement", date(2024, 7, 1), date(2025, 3, 1)),
        )
    )
    assert verified(events, [], two_extracts)["no_replacement_12m"][0] == "achieved"


def test_an_outpatient_or_earlier_register_placement_is_not_a_replacement() -> None:
    events = [start(), end(day=END.isoformat())]
    records = [
        record(
            "placement",
            {"start_date": "2024-03-01", "care_type": "outpatient", "municipality_code": "0180"},
            rid="a",
        ),
        record(
            "placement",
            {
                "start_date": "2023-01-10",
                "end_date": "2024-01-31",
                "care_type": "hvb",
                "municipality_code": "0180",
            },
            rid="b",
        ),
        record(
            "placement",
            {"start_date": "2024-01-31", "care_type": "hvb", "municipality_code": "0180"},
            rid="c",
        ),
    ]
    assert verified(events, records, covered())["no_replacement_12m"][0] == "achieved"


def test_the_school_status_nearest_the_follow_up_date_decides_education_or_work() -> None:
    events = [start(), end(day=END.isoformat()), follow(education=True, day="2025-02-05")]
    none_near = record("status", {"on_date": "2025-01-20", "status": "none"}, rid="s1")
    enrolled_far = record("status", {"on_date": "2024-11-30", "status": "enrolled"}, rid="s2")
    assert verified(events, [none_near, enrolled_far], Coverage())["education_or_work_12m"] == (
        "not_achieved",
        "achieved",
    )
    employed = record("status", {"on_date": "2025-02-01", "status": "employed"}, rid="s3")
    assert verified(events, [none_near, employed], Coverage())["education_or_work_12m"] == (
        "achieved",
        "achieved",
    )
    too_early = record("status", {"on_date": "2024-10-01", "status": "enrolled"}, rid="s4")
    assert verified(events, [too_early], Coverage())["education_or_work_12m"][0] == "unverified"


def test_a_death_or_emigration_before_the_outcome_excludes_it() -> None:
    events = [start(), end(day=END.isoformat())]
    gone = record("exclusion", {"on_date": "2024-09-01", "reason": "emigration"}, rid="x")
    out = verified(events, [gone], covered())
    assert out["no_replacement_12m"][0] == "excluded" and out["education_or_work_12m"][0] == "excluded"
    assert out["no_replacement_6m"][0] == "achieved", "the 6-month window closed before the emigration"
    replaced_first = record(
        "placement", {"start_date": "2024-08-01", "care_type": "sis", "municipality_code": "0180"}
    )
    assert verified(events, [gone, replaced_first], covered())["no_replacement_12m"][0] == "not_achieved"


def test_a_corrected_register_row_counts_by_its_extract_not_by_arrival() -> None:
    events = [start(), end(day=END.isoformat())]
    wrong = record(
        "placement",
        {"start_date": "2024-05-01", "care_type": "hvb", "municipality_code": "0180"},
        extract="a",
        as_of=date(2025, 6, 1),
    )
    corrected = record(
        "placement",
        {
            "start_date": "2023-05-01",
            "end_date": "2023-06-01",
            "care_type": "hvb",
            "municipality_code": "0180",
        },
        extract="b",
        as_of=date(2025, 9, 1),
    )
    for order in ([wrong, corrected], [corrected, wrong]):
        assert current_records(order) == [corrected]
        assert verified(events, order, covered())["no_replacement_12m"][0] == "achieved"


def _cohort() -> tuple[list[Any], list[RegisterRecord], list[CoverageClaim]]:
    events = [
        start(),
        end(day=END.isoformat()),
        follow(replaced=False, education=True, day="2025-02-05"),
        start(episode="ep2", day="2024-03-01"),
        end(episode="ep2", day="2024-06-30"),
    ]
    records = [
        record(
            "placement",
            {"start_date": "2024-09-01", "care_type": "hvb", "municipality_code": "0180"},
            rid="p1",
        ),
        record(
            "placement",
            {"start_date": "2024-10-01", "care_type": "hvb", "municipality_code": "0180"},
            rid="p1",
            extract="x2",
            as_of=date(2026, 2, 1),
        ),
        record("status", {"on_date": "2025-01-25", "status": "none"}, rid="s1"),
        record("status", {"on_date": "2025-06-30", "status": "enrolled"}, rid="s2"),
        record("exclusion", {"on_date": "2025-12-01", "reason": "death"}, rid="d1"),
    ]
    claims = [
        CoverageClaim("reg", "x1", "0180", "placement", date(2020, 1, 1), date(2025, 3, 1)),
        CoverageClaim("reg", "x2", "0180", "placement", date(2025, 3, 2), date(2026, 2, 1)),
    ]
    return events, records, claims


@settings(max_examples=100, deadline=None)
@given(st.randoms(use_true_random=False))
def test_verified_facts_are_the_same_in_any_order_of_events_rows_and_claims(rng: Any) -> None:
    events, records, claims = _cohort()

    def run(ev: list[Any], rec: list[RegisterRecord], cl: list[CoverageClaim]) -> dict[Any, Any]:
        episodes = list(fold_episodes(ev).values())
        return verified_for_subject(episodes, rec, Coverage(tuple(cl)), facts_for_subject(episodes, TODAY))

    expected = run(events, records, claims)
    assert len(expected) == 2 * 4  # two closed episodes, four verifiable measures
    for xs in (events, records, claims):
        rng.shuffle(xs)
    assert run(events, records, claims) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 30)), max_size=5),
    st.integers(0, 60),
    st.integers(0, 40),
)
def test_coverage_is_the_union_of_its_claims_day_by_day(
    spans: list[tuple[int, int]], first: int, length: int
) -> None:
    base = date(2024, 1, 1)
    claims = tuple(
        CoverageClaim(
            "r", f"x{i}", "0180", "placement", base + timedelta(days=s), base + timedelta(days=s + n)
        )
        for i, (s, n) in enumerate(spans)
    )
    days = {base + timedelta(days=s + d) for s, n in spans for d in range(n + 1)}
    lo, hi = base + timedelta(days=first), base + timedelta(days=first + length)
    want = all(lo + timedelta(days=d) in days for d in range(length + 1))
    assert Coverage(claims).covers("0180", "placement", lo, hi) == want


# --- gateway: agreement ---------------------------------------------------------------------------------------


def row(provider: str, episode: str, status: str, reported: str) -> VerifiedRow:
    return VerifiedRow(provider, episode, 2024, status, reported, ("register/reg/r1",))


def test_agreement_compares_only_what_both_sides_decided_with_a_wilson_interval() -> None:
    rows = [
        row("a", "1", "achieved", "achieved"),
        row("a", "2", "not_achieved", "achieved"),
        row("a", "3", "achieved", "missing"),
        row("a", "4", "unverified", "achieved"),
        row("a", "5", "excluded", "not_achieved"),
        row("b", "1", "not_achieved", "not_achieved"),
    ]
    a = agreement("a", [r for r in rows if r.provider_id == "a"])
    assert (a.compared, a.agree, a.register_only) == (2, 1, 1)
    assert a.share == 0.5 and a.interval is not None and a.interval.low < 0.5 < a.interval.high
    assert a.verified.model_dump() == {"achieved": 2, "not_achieved": 1, "excluded": 1, "unverified": 1}
    assert [p.provider_id for p in by_provider(rows)] == ["a", "b"]
    assert [(d.provider_id, d.episode_id) for d in disagreements(rows)] == [("a", "2")]
    assert agreement(None, []).interval is None
    assert BY_ID["education_or_work_12m"].window_months == 12


def test_decided_verified_outcomes_become_facts_contracts_can_pay_on() -> None:
    from utfall_measures.domain.catalogue import BY_ID as MEASURES

    events = [start(), end(day=END.isoformat())]
    episodes = list(fold_episodes(events).values())
    reported = facts_for_subject(episodes, TODAY)
    out = verified_for_subject(episodes, [], covered(), reported)
    fact = out[(("hvb-eken", "ep1"), "no_replacement_12m")].as_fact(MEASURES["no_replacement_12m"])
    assert fact is not None and fact.measure_id == "no_replacement_12m@register" and fact.status == "achieved"
    uncovered = verified_for_subject(episodes, [], Coverage(), reported)
    assert (
        uncovered[(("hvb-eken", "ep1"), "no_replacement_12m")].as_fact(MEASURES["no_replacement_12m"]) is None
    )


def test_the_demo_registers_extract_is_valid_row_by_row() -> None:
    """What `make run`'s demo register sends: every row taken, none refused (an id too long, a date after the
    extract), and the contradicted provider's school answers differ from its reports."""
    from utfall_synthetic.cohort import CohortConfig, generate
    from utfall_synthetic.registers import register_extract

    today = date(2026, 10, 31)
    cohort = generate(CohortConfig(subjects=300, seed=4242, today=today))
    extract = register_extract(cohort.events, today=today, contradicted_provider="hvb-granen")
    header = check_header(extract, today=today, scope_municipality=None)
    assert isinstance(header, RegisterExtractV1)
    rows = [check_row(r, key=KEY, as_of=header.as_of, today=today, pointer="") for r in header.records]
    refused = [r for r in rows if not isinstance(r, CheckedRecord)]
    assert refused == [] and len({r["record_id"] for r in header.records}) == len(rows) > 100
    assert any(r["record_id"].startswith("pk-hvb-granen") for r in header.records)
