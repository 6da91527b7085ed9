"""HTML routes: chat page, source viewer, widget script and demo page (files in static/)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from rag.errors import DocumentNotFound
from rag.serve.deps import Current, Svc
from rag.serve.services import Session

router = APIRouter(include_in_schema=False)
# The viewer, served for the default collection at /view/{doc_id} and for each collection
# under /c/{collection}/; its script calls the API relative to the page.
collection_router = APIRouter(include_in_schema=False)
# One collection's chat page, /c/{collection}/ (the one at / serves the default collection, or
# offers a choice), and the files its pages load by relative URL (/c/{collection}/web/...).
prefixed_router = APIRouter(include_in_schema=False)

# Assets the pages load from /web/; anything else under that path is a 404.
ASSET_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The pages build every piece of data into the DOM as text; the policy is a second line of defence.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
WIDGET_MAX_AGE = 300


# The only names /web/ serves: a name is looked up here, never handed to the file system
# (a NUL or a 300-character name made the open fail with a 500).
WEB_ASSETS = frozenset(
    f.name
    for f in resources.files("rag.serve").joinpath("static").iterdir()
    if f.is_file() and f.name[f.name.rfind(".") :] in ASSET_TYPES
)


@lru_cache(maxsize=32)
def read_asset(name: str) -> str:
    """Text of one file shipped in ``rag/serve/static``."""
    return resources.files("rag.serve").joinpath("static", name).read_text(encoding="utf-8")


def _page(name: str, status_code: int = 200) -> HTMLResponse:
    headers = {**PAGE_HEADERS, "Content-Security-Policy": PAGE_CSP}
    return HTMLResponse(read_asset(name), status_code=status_code, headers=headers)


def _document_exists(session: Session | None, doc_id: str) -> bool | None:
    """Whether the served index holds ``doc_id``; None when no index is loaded to ask."""
    if session is None:
        return None
    try:
        session.document(doc_id)
    except DocumentNotFound:
        return False
    return True


@router.api_route(methods=["GET", "HEAD"], path="/", response_class=HTMLResponse)
def chat_page() -> HTMLResponse:
    """The chat page: a streaming conversation over the guides (with a picker when the caller
    may use several collections)."""
    return _page("chat.html")


@prefixed_router.api_route(methods=["GET", "HEAD"], path="/", response_class=HTMLResponse)
def collection_chat_page(svc: Svc) -> HTMLResponse:
    """The chat page of one collection (404 for an unknown one, 401/403 for a private one)."""
    return _page("chat.html")


@collection_router.api_route(
    methods=["GET", "HEAD"], path="/view/{doc_id}", response_class=HTMLResponse
)
def viewer_page(doc_id: str, session: Current) -> HTMLResponse:
    """The source viewer; the page itself fetches the document and marks the cited span."""
    found = _document_exists(session, doc_id)
    return _page("viewer.html", status_code=404 if found is False else 200)


@router.api_route(methods=["GET", "HEAD"], path="/demo", response_class=HTMLResponse)
def demo_page() -> HTMLResponse:
    """A sample careers site that embeds the widget with the one-tag snippet."""
    return _page("demo.html")


@router.api_route(methods=["GET", "HEAD"], path="/widget.js")
def widget_script() -> Response:
    """The embeddable widget, loadable from any origin with a plain script tag."""
    return Response(
        read_asset("widget.js"),
        media_type="text/javascript; charset=utf-8",
        headers={
            "Cache-Control": f"public, max-age={WIDGET_MAX_AGE}",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


@router.api_route(methods=["GET", "HEAD"], path="/web/{name}")
def web_asset(name: str) -> Response:
    """Scripts and styles of the chat page and the viewer."""
    if name not in WEB_ASSETS:
        raise HTTPException(status_code=404, detail="not found")
    return Response(
        read_asset(name),
        media_type=ASSET_TYPES[name[name.rfind(".") :]],
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@prefixed_router.api_route(methods=["GET", "HEAD"], path="/web/{name}")
def collection_web_asset(name: str) -> Response:
    """The same files for the pages under /c/{collection}/, which load them by relative URL;
    they hold nothing of any collection, so no access check."""
    return web_asset(name)
