"""Routes: POST /documents (upload files) and DELETE /documents/{doc_id} (remove an upload).

Both need an admin key or a key scoped to the collection with upload rights. Each file is
checked whole in a worker thread (rag.sources.uploads: its type from its content, its size, its
name, whether it parses) before anything is written; one bad file refuses the request and
nothing of it is kept. The collection is then re-indexed (rag.serve.upkeep) and the new index is
served before the answer, so the ids it returns are searchable at once.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from rag.collections import Collection
from rag.errors import IndexBusy, RagError
from rag.index.manifest import Manifest
from rag.serve.access import AUTH_HEADERS
from rag.serve.deps import Server
from rag.serve.errors import error_response, public_message
from rag.serve.schemas import ERRORS, ErrorResponse
from rag.serve.upkeep import Upkeep
from rag.sources.layout import UPLOADS
from rag.sources.uploads import MAX_FILES, Upload, UploadRefused, check_upload

log = logging.getLogger(__name__)
router = APIRouter(tags=["documents"])

FIELD = "files"
# Form fields besides the files: the admin page's CSRF token is one.
MAX_FIELDS = 5
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {
                        FIELD: {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": 1,
                            "maxItems": MAX_FILES,
                            "description": "md, mdx, html, pdf, docx or txt files; the type is "
                            "read from each file's content",
                        }
                    },
                }
            }
        },
    }
}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "A file name that holds a path, or a form that cannot be read"),
        (401, "No key: uploads need one"),
        (403, "The key may not upload to this collection"),
        (409, "The file is not an upload, or the uploads folder is not this server's"),
        (413, "The upload is larger than `RAG_MAX_UPLOAD_BYTES`"),
        (415, "A type other than md, mdx, html, pdf, docx or txt, judged by the content"),
        (422, "A file that cannot be read: broken, encrypted, empty, a ZIP bomb"),
        (503, "The collection could not be re-indexed; nothing was kept"),
    )
}


class UploadedFile(BaseModel):
    """One uploaded file: where it is kept, its type and the documents it gave."""

    file: str
    name: str
    type: str
    bytes: int
    ids: list[str]
    # Why a file gave no document: its text is a document the collection already has.
    note: str | None = None


class UploadResult(BaseModel):
    """The documents an upload added, searchable now."""

    collection: str
    ids: list[str]
    files: list[UploadedFile]
    build_id: str


class DeleteResult(BaseModel):
    """An uploaded file removed, with the documents it held."""

    collection: str
    file: str
    removed: list[str]
    build_id: str


async def uploader(request: Request, state: Server) -> Upkeep:
    """The collection the path names, if the caller may upload to it: 401 without a key, 403
    with one that has no upload rights there."""
    collection = state.catalog.get(request.path_params.get("collection"))
    caller = await state.access.authorise(request, collection)
    scoped = caller.admin or (caller.key is not None and caller.key.may_use(collection.name))
    if not (caller.may_upload and scoped):
        if caller.anonymous:
            raise HTTPException(
                401,
                detail="uploading needs a key with upload rights: send Authorization: Bearer KEY",
                headers=AUTH_HEADERS,
            )
        raise HTTPException(
            403, detail=f"this key may not upload to collection {collection.name!r}"
        )
    return state.upkeep[collection.name]


Uploader = Annotated[Upkeep, Depends(uploader)]


@router.post(
    "/documents",
    status_code=201,
    response_model=UploadResult,
    responses={**ERRORS, **_REFUSALS},
    openapi_extra=UPLOAD_BODY,
)
async def upload_documents(request: Request, upkeep: Uploader) -> Any:
    """Add documents: one or more files in the multipart field `files`."""
    try:
        files, _ = await read_form(request, upkeep.collection.settings.max_upload_bytes)
        uploads = await check_files(upkeep.collection, files)
        manifest = await upkeep.add(uploads)
    except UploadRefused as exc:
        return error_response(exc.status, str(exc), FIELD, kind=exc.kind)
    except Exception as exc:
        return build_failed(upkeep, exc)
    return JSONResponse(upload_result(upkeep, uploads, manifest), status_code=201)


@router.delete(
    "/documents/{doc_id}",
    response_model=DeleteResult,
    responses={
        **ERRORS,
        **_REFUSALS,
        404: {"model": ErrorResponse, "description": "No such document"},
    },
)
async def delete_document(
    doc_id: Annotated[str, PathParam(max_length=512)], upkeep: Uploader
) -> Any:
    """Remove an uploaded document (the whole file it came from) and re-index."""
    try:
        name, removed = uploaded_file_of(upkeep, doc_id)
        manifest = await upkeep.remove(name)
    except UploadRefused as exc:
        return error_response(exc.status, str(exc), "doc_id", kind=exc.kind)
    except Exception as exc:
        return build_failed(upkeep, exc)
    return {"collection": upkeep.name, "file": f"{UPLOADS}/{name}", "removed": removed,
            "build_id": served_build(upkeep, manifest)}  # fmt: skip


async def read_form(
    request: Request, max_bytes: int
) -> tuple[list[tuple[str | None, bytes]], dict[str, str]]:
    """The files of the multipart field ``files`` and the other fields, all in memory."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        raise UploadRefused(
            f"the body must be multipart/form-data with the files in the field {FIELD!r}",
            415,
            "unsupported_media_type",
        )
    parser = MultiPartParser(
        request.headers, request.stream(), max_files=MAX_FILES, max_fields=MAX_FIELDS
    )
    # The body is in memory already (rag.serve.middleware caps it): no file is spooled to disk.
    parser.spool_max_size = max_bytes + 1
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise UploadRefused(f"the form cannot be read: {exc}", 400, "bad_form") from None
    files: list[tuple[str | None, bytes]] = []
    fields: dict[str, str] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == FIELD:
                    files.append((value.filename, await value.read()))
            else:
                fields[key] = value
    finally:
        await form.close()
    if not files:
        raise UploadRefused(f"send one or more files in the form field {FIELD!r}", 422, "missing")
    return files, fields


async def check_files(
    collection: Collection, files: list[tuple[str | None, bytes]]
) -> list[Upload]:
    """Every file checked (in a worker thread: a PDF's parse is slow); the first refusal wins."""
    settings = collection.settings

    def check() -> list[Upload]:
        uploads = [
            check_upload(name, data, settings.max_upload_bytes, settings.text_profile)
            for name, data in files
        ]
        names = [u.name for u in uploads]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UploadRefused(
                f"two files would both be kept as {twice[0]}: rename one", 400, "bad_name"
            )
        return uploads

    return await anyio.to_thread.run_sync(check)


def upload_result(upkeep: Upkeep, uploads: list[Upload], manifest: Manifest) -> dict[str, Any]:
    """The answer to an upload, from the index now served."""
    build_id = served_build(upkeep, manifest)
    current = upkeep.svc.current
    documents = current.documents if current is not None else ()
    files = []
    for upload in uploads:
        source = f"{UPLOADS}/{upload.name}"
        ids = [d["id"] for d in documents if d["source"] == source]
        note = None if ids else "its text is already indexed from another file: no new document"
        files.append({"file": source, "name": upload.original, "type": upload.type,
                      "bytes": len(upload.data), "ids": ids, "note": note})  # fmt: skip
    ids = [i for f in files for i in f["ids"]]
    return {"collection": upkeep.name, "ids": ids, "files": files, "build_id": build_id}


def uploaded_file_of(upkeep: Upkeep, doc_id: str) -> tuple[str, list[str]]:
    """The uploaded file a document comes from, and every document of that file."""
    current = upkeep.svc.current
    documents = current.documents if current is not None else ()
    found = next((d for d in documents if d["id"] == doc_id), None)
    if found is None:
        raise UploadRefused(
            f"no document {doc_id!r} in collection {upkeep.name!r}", 404, "not_found"
        )
    source = str(found["source"])
    if not source.startswith(f"{UPLOADS}/") or "/" in source[len(UPLOADS) + 1 :]:
        raise UploadRefused(
            f"document {doc_id!r} comes from {source}, not from an upload: remove it at its source",
            409,
            "not_an_upload",
        )
    removed = [d["id"] for d in documents if d["source"] == source]
    return source[len(UPLOADS) + 1 :], removed


def served_build(upkeep: Upkeep, manifest: Manifest) -> str:
    """The build now served, which must be ``manifest``'s; 503 when it could not be loaded."""
    current = upkeep.svc.current
    if current is None or current.build_id != manifest.build_id:
        why = upkeep.svc.reload_error or upkeep.svc.error or "it is not served yet"
        raise HTTPException(503, detail=f"the collection was re-indexed but the new index "
                            f"cannot be served: {why}", headers={"Retry-After": "5"})  # fmt: skip
    return current.build_id


def build_failed(upkeep: Upkeep, exc: Exception) -> JSONResponse:
    """503 for a re-index that failed: nothing of the request was kept."""
    return error_response(
        503, reindex_error(upkeep, exc), kind="reindex_failed", headers={"Retry-After": "5"}
    )


def reindex_error(upkeep: Upkeep, exc: Exception) -> str:
    """Why a re-index failed, without paths or library internals (the log has them)."""
    if isinstance(exc, HTTPException):
        raise exc
    if not isinstance(exc, RagError):
        log.error("re-indexing collection %s failed", upkeep.name, exc_info=exc)
    why = public_message(exc, upkeep.collection.settings.index_dir)
    if isinstance(exc, IndexBusy):
        why = "another build is writing the index"
    return f"the collection could not be re-indexed ({why}); nothing was changed"
