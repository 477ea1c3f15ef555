"""Releases of the open comparisons: published by an operator, frozen, downloadable as CSV and JSON with a
suppression flag per cell and the changes against the previous release."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from utfall_events.releases import CellChangeV1, ReleaseCommentV1, ReleasedCellV1, ReleaseV1
from utfall_platform.problems import Problem, problem_responses

from ..auth import Operator
from ..release_service import publish_release
from ..release_store import ReleaseStore
from ..state import gateway_state

router = APIRouter(
    prefix="/v1/releases", tags=["releases"], responses=problem_responses(400, 401, 403, 404, 422)
)

ReleaseNumber = Annotated[int, Path(ge=1, le=1_000_000)]
CSV_COLUMNS = list(ReleasedCellV1.model_fields)


class ReleaseRequest(BaseModel):
    note: str | None = Field(None, max_length=2000, description="what this release is, for its readers")


def release_store(request: Request) -> ReleaseStore:
    store: ReleaseStore = request.app.state.releases
    return store


class ReleaseLinks(BaseModel):
    self: str
    json_: str = Field(alias="json", serialization_alias="json")
    csv: str
    changes: str


class ReleaseOut(ReleaseV1):
    """A release's manifest, with where its open data is."""

    links: ReleaseLinks


class ReleasesOut(BaseModel):
    releases: list[ReleaseOut]


class MeasureChangeOut(CellChangeV1):
    measure_id: str


class ChangesOut(BaseModel):
    release: int
    previous: int | None
    changes: list[MeasureChangeOut]


class CommentsOut(BaseModel):
    comments: list[ReleaseCommentV1]


def _links(number: int) -> ReleaseLinks:
    base = f"/v1/releases/{number}"
    return ReleaseLinks.model_validate(
        {"self": base, "json": f"{base}/data.json", "csv": f"{base}/data.csv", "changes": f"{base}/changes"}
    )


def _out(release: ReleaseV1) -> ReleaseOut:
    return ReleaseOut(**release.model_dump(), links=_links(release.release))


def _manifest(store: ReleaseStore, number: int) -> ReleaseV1:
    release = store.manifest(number)
    if release is None:
        raise Problem(404, "not-found", f"No release {number}.")
    return release


def _cells(store: ReleaseStore, release: ReleaseV1) -> list[ReleasedCellV1]:
    return store.cells(release)


@router.post(
    "",
    status_code=201,
    summary="Publish a release: every public table as of now, frozen (200: nothing changed since the latest)",
    responses={200: {"description": "Nothing changed since the latest release: that release"}},
)
async def publish(request: Request, who: Operator, body: ReleaseRequest | None = None) -> JSONResponse:
    store = release_store(request)
    release, created = await publish_release(gateway_state(request), store, who, body.note if body else None)
    # 200 with the latest release when nothing changed since it: publishing twice makes one release
    return JSONResponse(
        _out(release).model_dump(mode="json", by_alias=True),
        status_code=201 if created else 200,
        headers={"Location": f"/v1/releases/{release.release}"},
    )


@router.get(
    "", response_model=ReleasesOut, response_model_by_alias=True, summary="Every release, newest first"
)
async def list_releases(request: Request) -> ReleasesOut:
    return ReleasesOut(releases=[_out(r) for r in release_store(request).manifests()])


@router.get("/latest", response_model=ReleaseOut, summary="The latest release")
async def latest(request: Request) -> ReleaseOut:
    release = release_store(request).latest()
    if release is None:
        raise Problem(404, "not-found", "No release has been published yet.")
    return _out(release)


@router.get(
    "/comments",
    response_model=CommentsOut,
    summary="Providers' comments and factual corrections on the next release (operators)",
)
async def comments(request: Request, who: Operator) -> CommentsOut:
    return CommentsOut(comments=list(release_store(request).comments()))


@router.get(
    "/{number}",
    response_model=ReleaseOut,
    summary="One release: what it holds, when its data was read, how much is suppressed",
)
async def one(request: Request, number: ReleaseNumber) -> ReleaseOut:
    return _out(_manifest(release_store(request), number))


@router.get("/{number}/data.json", summary="Every cell of a release, with its suppression flag")
async def data_json(request: Request, number: ReleaseNumber) -> Response:
    store = release_store(request)
    release = _manifest(store, number)
    body = {
        "release": release.model_dump(mode="json"),
        "cells": [c.model_dump(mode="json") for c in _cells(store, release)],
    }
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=31536000, immutable"})


@router.get(
    "/{number}/data.csv",
    summary="Every cell of a release as CSV (suppressed cells: no numbers)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV, one row per cell"}
    },
)
async def data_csv(request: Request, number: ReleaseNumber) -> Response:
    store = release_store(request)
    release = _manifest(store, number)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for cell in _cells(store, release):
        writer.writerow({k: _csv_value(v) for k, v in cell.model_dump(mode="json").items()})
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="utfall-release-{number}.csv"',
            "Cache-Control": "public, max-age=31536000, immutable",
        },
    )


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""  # a suppressed cell: no number at all
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


@router.get(
    "/{number}/changes",
    response_model=ChangesOut,
    summary="What changed against the previous release, cell by cell",
)
async def changed(request: Request, number: ReleaseNumber) -> ChangesOut:
    store = release_store(request)
    release = _manifest(store, number)
    listed = []
    for m in release.measures:
        measure = store.measure(number, m.measure_id)
        assert measure is not None
        listed += [MeasureChangeOut(measure_id=m.measure_id, **c.model_dump()) for c in measure.changes]
    return ChangesOut(release=number, previous=release.previous, changes=listed)
