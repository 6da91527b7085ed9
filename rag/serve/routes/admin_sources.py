"""Routes: /admin/sources, the collections with their sources, last syncs and documents, where an
admin uploads a file, deletes an uploaded document or syncs a collection now.

Behind /admin's sign-in (rag.serve.routes.admin: the token as Bearer, an admin key, or the
session cookie). The forms post; the page has no script (its CSP allows none). The session
cookie is SameSite=Strict, so a form on another site arrives without it and is refused; but
"site" is the registrable domain, not the origin, so a page on another port of this host or on
a sibling subdomain is same-site and its form would carry the cookie. Each form therefore holds
a token bound to the session (an HMAC of the cookie, keyed from the admin token) that such a
page cannot read; a request authorised by a Bearer token carries no ambient credential and needs
none.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Annotated, Any
from urllib.parse import parse_qs

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse

from rag.collections import NAME_PATTERN
from rag.serve.routes.admin import COOKIE, HEADERS, Admin
from rag.serve.routes.uploads import check_files, read_form, reindex_error, uploaded_file_of
from rag.serve.sources_page import PAGE_CSP, render_sources
from rag.serve.state import ServerState
from rag.serve.upkeep import Upkeep
from rag.sources.layout import UPLOADS
from rag.sources.uploads import UploadRefused
from rag.upkeep import last_sync

router = APIRouter(prefix="/admin/sources", include_in_schema=False)

PAGE = "/admin/sources"
_NAME = NAME_PATTERN.strip("^$")
# The admin page's urlencoded forms, and the paths that take files (rag.serve.middleware).
ADMIN_FORMS = re.compile(rf"^{PAGE}/{_NAME}/(?:delete|sync)$")
UPLOAD_PATHS = re.compile(rf"^(?:(?:/c/{_NAME})?/documents|{PAGE}/{_NAME}/upload)$")
PAGE_HEADERS = {**HEADERS, "Content-Security-Policy": PAGE_CSP}
# Rows of a collection's document table; uploads are listed first, so each stays deletable.
SHOWN_DOCUMENTS = 1000
Name = Annotated[str, PathParam(pattern=NAME_PATTERN)]


def csrf_token(token: str, cookie: str) -> str:
    """The token the forms of one session carry: an HMAC of its cookie."""
    key = hmac.new(token.encode(), b"career-rag admin forms", hashlib.sha256).digest()
    return hmac.new(key, cookie.encode(), hashlib.sha256).hexdigest()


def _form_token(request: Request, state: ServerState) -> str:
    cookie = request.cookies.get(COOKIE)
    return csrf_token(state.settings.admin_token, cookie) if cookie else ""


def _check_csrf(request: Request, state: ServerState, fields: dict[str, str]) -> None:
    """403 unless the form carries its session's token (or the request used a Bearer token)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        return
    expected = _form_token(request, state)
    sent = fields.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(
            403,
            detail="this form's token is missing or wrong: reload the admin page and try again",
            headers=HEADERS,
        )


async def _urlencoded(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    try:
        form = parse_qs(body, max_num_fields=5)
    except ValueError:
        raise HTTPException(400, detail="the form has too many fields", headers=HEADERS) from None
    return {k: v[0] for k, v in form.items()}


def _upkeep(state: ServerState, name: str) -> Upkeep:
    return state.upkeep[state.catalog.get(name).name]


def overview(state: ServerState) -> list[dict[str, Any]]:
    """Every collection with its sources' last sync and its documents (reads files: call it
    from a worker thread)."""
    out = []
    for collection, svc in state.collections():
        upkeep = state.upkeep[collection.name]
        last = last_sync(collection)
        runs = {s.name: s for s in last.sources} if last is not None else {}
        sources = []
        for entry in collection.layout.entries:
            run = runs.get(entry.name)
            sources.append({
                "name": entry.name, "type": entry.source.type, "source": entry.source.label(),
                "last": run.model_dump(mode="json") if run is not None else None,
                "synced_at": last.finished_at if run is not None and last is not None else None,
            })  # fmt: skip
        try:
            uploaded = set(upkeep.uploads.record().files)
            uploads_error = None
        except UploadRefused as exc:
            uploaded, uploads_error = set(), str(exc)
        current = svc.current
        documents = []
        for doc in current.documents if current is not None else ():
            source = str(doc["source"])
            is_upload = source.startswith(f"{UPLOADS}/") and source[len(UPLOADS) + 1 :] in uploaded
            origin = "upload" if is_upload else source.split("/", 1)[0] if "/" in source else ""
            documents.append({"id": doc["id"], "title": doc["title"], "source": source,
                              "origin": origin, "upload": is_upload})  # fmt: skip
        documents.sort(key=lambda d: not d["upload"])
        out.append({
            "name": collection.name, "public": collection.public,
            "build_id": current.build_id if current is not None else None,
            "loaded_at": current.loaded_at if current is not None else None,
            "index_error": svc.error or svc.reload_error,
            "sync_every": collection.settings.sync_every,
            "syncing": upkeep.syncing, "sync_started": upkeep.sync_started,
            "last_sync": last.model_dump(mode="json", exclude={"sources"}) if last else None,
            "sources": sources, "uploads_error": uploads_error,
            "documents": documents[:SHOWN_DOCUMENTS], "document_count": len(documents),
        })  # fmt: skip
    return out


async def _page(
    request: Request, state: ServerState, status: int = 200, notice: str = "", error: str = ""
) -> HTMLResponse:
    collections = await anyio.to_thread.run_sync(overview, state)
    page = render_sources(collections, _form_token(request, state), notice=notice, error=error)
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)


@router.api_route("", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def sources_page(request: Request, state: Admin) -> HTMLResponse:
    """The collections, their sources and documents, with the upload, delete and sync forms."""
    return await _page(request, state)


@router.get(".json")
async def sources_json(state: Admin) -> JSONResponse:
    """The page's data as JSON, for scripts."""
    collections = await anyio.to_thread.run_sync(overview, state)
    return JSONResponse({"collections": collections}, headers=HEADERS)


@router.post("/{name}/upload", response_class=HTMLResponse)
async def upload_form(request: Request, name: Name, state: Admin) -> HTMLResponse:
    """Upload files into a collection from the page."""
    upkeep = _upkeep(state, name)
    try:
        files, fields = await read_form(request, upkeep.collection.settings.max_upload_bytes)
        _check_csrf(request, state, fields)
        uploads = await check_files(upkeep.collection, files)
        await upkeep.add(uploads)
    except UploadRefused as exc:
        return await _page(request, state, exc.status, error=f"Not uploaded: {exc}")
    except HTTPException:
        raise
    except Exception as exc:
        return await _page(request, state, 503, error=f"Not uploaded: {reindex_error(upkeep, exc)}")
    names = ", ".join(u.original for u in uploads)
    return await _page(request, state, 201, notice=f"Uploaded to {name}: {names}.")


@router.post("/{name}/delete", response_class=HTMLResponse)
async def delete_form(request: Request, name: Name, state: Admin) -> HTMLResponse:
    """Delete an uploaded document from the page."""
    upkeep = _upkeep(state, name)
    fields = await _urlencoded(request)
    _check_csrf(request, state, fields)
    doc_id = fields.get("doc_id", "")
    try:
        file, _ = uploaded_file_of(upkeep, doc_id)
        await upkeep.remove(file)
    except UploadRefused as exc:
        return await _page(request, state, exc.status, error=f"Not deleted: {exc}")
    except Exception as exc:
        return await _page(request, state, 503, error=f"Not deleted: {reindex_error(upkeep, exc)}")
    return await _page(request, state, notice=f"Deleted {doc_id} ({UPLOADS}/{file}) from {name}.")


@router.post("/{name}/sync", response_class=HTMLResponse)
async def sync_form(request: Request, name: Name, state: Admin) -> HTMLResponse:
    """Start a sync of a collection's sources now (it runs on after the answer)."""
    upkeep = _upkeep(state, name)
    fields = await _urlencoded(request)
    _check_csrf(request, state, fields)
    if not upkeep.sync_now():
        return await _page(request, state, 409, error=f"A sync of {name} is already running.")
    return await _page(
        request, state, 202, notice=f"Syncing {name}: reload this page to follow it."
    )
