"""Domain errors and request problems as JSON: ``{"detail", "field", "errors": [...]}``.

``field`` is a dotted path into the request body (``filters.doc_id``, ``messages.2.role``) and
``errors`` lists every validation problem. This is the only place that maps errors to statuses.

Under /v1/ (the OpenAI-compatible API) every error, the middleware's too, is sent in OpenAI's
shape instead: ``{"error": {"message", "type", "param", "code"}}``, a 422 as 400.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from rag.analytics.querylog import QueryNotFound
from rag.errors import (
    BadQuery,
    CollectionNotFound,
    CorpusEmpty,
    DocumentNotFound,
    IndexDamaged,
    IndexIncompatible,
    IndexNotFound,
    ModelNotFound,
    RagError,
)
from rag.serve.openai_schemas import OpenAIError, OpenAIErrorResponse
from rag.serve.schemas import ErrorResponse, FieldError

log = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[RagError], int], ...] = (
    (BadQuery, 422),
    (DocumentNotFound, 404),
    (QueryNotFound, 404),
    (CollectionNotFound, 404),
    (ModelNotFound, 404),
    (IndexNotFound, 503),
    (IndexIncompatible, 503),
    (CorpusEmpty, 503),
)


_FIELD_OF = {
    DocumentNotFound: "doc_id",
    QueryNotFound: "query_id",
    CollectionNotFound: "collection",
    ModelNotFound: "model",
}


# Library field names as the request spells them: /search takes doc_id inside "filters".
_REQUEST_FIELD = {"doc_id": "filters.doc_id"}


# The OpenAI-compatible API's paths: their clients read errors in OpenAI's shape only.
OPENAI_PREFIX = "/v1/"


class ErrorJSON(JSONResponse):
    """An error response; in OpenAI's shape when it answers a request under /v1/."""

    def __init__(
        self, error: ErrorResponse, status: int, kind: str, headers: dict[str, str] | None
    ) -> None:
        super().__init__(error.model_dump(), status_code=status, headers=headers)
        self.error = error
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(OPENAI_PREFIX):
            await self.openai()(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def openai(self) -> JSONResponse:
        """This error as OpenAI's API says one, with the same headers (Retry-After...)."""
        status = 400 if self.status_code == 422 else self.status_code
        code = self.error.errors[0].type if self.error.errors else self.kind
        body = OpenAIErrorResponse(
            error=OpenAIError(
                message=self.error.detail,
                type=_openai_type(status),
                param=self.error.field,
                code=None if code == "invalid" else _snake(code),
            )
        )
        own = ("content-length", "content-type")
        headers = {k: v for k, v in self.headers.items() if k not in own}
        return JSONResponse(body.model_dump(), status, headers)


def _openai_type(status: int) -> str:
    # OpenAI's own error types: a rate limit's is "requests", a server's "server_error".
    if status == 429:
        return "requests"
    return "server_error" if status >= 500 else "invalid_request_error"


def _snake(name: str) -> str:
    # A domain error's class name as OpenAI spells codes: BadQuery -> bad_query.
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def error_response(
    status: int,
    detail: str,
    field: str | None = None,
    errors: Sequence[FieldError] | None = None,
    *,
    kind: str = "invalid",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if errors is None:
        errors = [FieldError(field=field, message=detail, type=kind)] if field else []
    body = ErrorResponse(detail=detail, field=field, errors=list(errors))
    return ErrorJSON(body, status, kind, headers)


def public_message(exc: BaseException, index_dir: Path | None = None) -> str:
    """What an HTTP client is told of a server-side problem: no absolute path, no library's
    message. The whole error is for the log.

    IndexDamaged says it itself (``public``); another RagError's message names the index by
    its folder's name instead of its path, and leaves out the library error it was raised
    from; any other error is not described at all.
    """
    if isinstance(exc, IndexDamaged):
        return exc.public
    if not isinstance(exc, RagError):
        return "the index could not be loaded: the server log has the details"
    text = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) in text:
        text = text.replace(str(cause), "").replace(":  ", ": ").strip().rstrip(":")
    if index_dir is not None:
        index_dir = Path(index_dir)
        forms = {str(index_dir), str(index_dir.absolute()), str(index_dir.resolve())}
        for form in sorted(forms, key=len, reverse=True):  # the longest first: it holds others
            text = text.replace(form, index_dir.name)
    # Whatever absolute path is left (a file of the index, a model folder): its last part.
    return _ABSOLUTE_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


# A path from the root: a slash not inside a word, a URL or a relative path.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"`,;:()]+")


async def _rag_error(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        svc = getattr(request.app.state, "services", None)
        detail = public_message(exc, svc.settings.index_dir if svc is not None else None)
        return error_response(status, detail, kind=type(exc).__name__)
    if isinstance(exc, BadQuery):
        name = _REQUEST_FIELD.get(exc.field, exc.field)
    else:
        name = next((f for cls, f in _FIELD_OF.items() if isinstance(exc, cls)), None)
    detail = f"{name}: {exc}" if name and not str(exc).startswith(name.split(".")[-1]) else str(exc)
    return error_response(status, detail, name, kind=type(exc).__name__)


def _loc(loc: Sequence[Any]) -> str:
    # Drop where FastAPI found the value ("body", "path"): the rest is the field's path.
    parts = loc[1:] if loc and loc[0] in ("body", "path", "query") else loc
    return ".".join(map(str, parts)) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for e in exc.errors():
        if e["type"] == "json_invalid":
            message = f"request body is not valid JSON ({e.get('ctx', {}).get('error', e['msg'])})"
            errors.append(FieldError(field="body", message=message, type="json_invalid"))
        else:
            errors.append(FieldError(field=_loc(e["loc"]), message=e["msg"], type=e["type"]))
    first = errors[0]
    detail = f"{first.field}: {first.message}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    status = 400 if first.type == "json_invalid" else 422
    return error_response(status, detail, first.field, errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; /documents has
        # GET and POST in two routes.
        headers = {**(headers or {}), "Allow": ", ".join(_methods(request))}
    return error_response(exc.status_code, str(exc.detail), headers=headers)


def _methods(request: Request) -> list[str]:
    """Every method some route answers on the request's path."""
    found: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            found |= getattr(route, "methods", None) or set()
    return sorted(found)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal server error")


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error the app can meet with the JSON error shape."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RagError, _rag_error)
    app.add_exception_handler(Exception, _server_error)
