"""RFC 9457 problem details for every HTTP error of every service."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from utfall_events.personnummer import redact

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://utfall.se/problems/"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers, documented as application/problem+json."""
    schema = ProblemDetails.model_json_schema()
    return {
        status: {"description": _TITLES.get(status, "Error"), "content": {PROBLEM_JSON: {"schema": schema}}}
        for status in statuses
    }


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, slug: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.extensions = extensions


def problem_document(
    status: int, slug: str, detail: str, *, instance: str | None = None, **extensions: Any
) -> dict[str, Any]:
    """RFC 9457 fields, with anything that could hold a personnummer redacted (also for answers on Kafka)."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": redact(detail),
    }
    if instance:
        # the path may hold what a caller sent (an id, a provider): never echo a personnummer back
        body["instance"] = redact(unquote(instance))
    body.update(_redacted(extensions))
    return body


def problem_response(
    status: int,
    slug: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = problem_document(status, slug, detail, instance=instance, **extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-parameters",
    429: "too-many-requests",
    503: "unavailable",
}


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (RFC 9110 §15.5.6). Starlette's own Allow names only the
    first route that matched the path, though GET and POST on one path are often two routes; asking the
    router once per method also sees through included routers."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        headers = {"WWW-Authenticate": "ApiKey"} if exc.status == 401 else None
        return problem_response(
            exc.status, exc.slug, exc.detail, instance=request.url.path, headers=headers, **exc.extensions
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # keep the exception's headers (a 401's challenge); a 405 lists every method the path takes
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem_response(
            exc.status_code,
            _SLUGS.get(exc.status_code, "error"),
            str(exc.detail),
            instance=request.url.path,
            headers=headers or None,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")),
                "in": str(err.get("loc", ("",))[0]),
                "message": str(err.get("msg", "")),
            }
            for err in exc.errors()
        ]
        return problem_response(
            422,
            "invalid-parameters",
            "One or more request parameters are invalid.",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from .db import TRANSIENT_PG_ERRORS

        if isinstance(exc, TRANSIENT_PG_ERRORS):
            # the database is briefly away (restart, failover): nothing was committed; ask for a retry
            log.warning("transient database fault on %s %s: %r", request.method, request.url.path, exc)
            return problem_response(
                503,
                "unavailable",
                "The service is briefly unavailable; retry shortly.",
                instance=request.url.path,
                headers={"Retry-After": "1"},
            )
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500, "internal", "An unexpected error occurred; it has been logged.", instance=request.url.path
        )
