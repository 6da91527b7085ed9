"""/docs: Swagger UI from the files of the ``swagger-ui-bundle-v2`` package, never from a CDN.

FastAPI's own /docs page loads Swagger UI's script and styles from a public CDN, so every
visitor's browser asks a third party for code that then runs with this origin's rights. This
serves the copy a package installed, under a policy that lets the page load nothing from
elsewhere; the page's one script of ours starts the UI on ``/openapi.json``. The ``docs``
setting turns the page off (the schema itself stays at ``/openapi.json``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from rag.serve.pages import PAGE_HEADERS, read_asset

router = APIRouter(include_in_schema=False)

# Swagger UI sets inline styles on its elements; nothing else is relaxed.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_FILES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}


def swagger_dir() -> Path:
    """Where the installed Swagger UI files are."""
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


@lru_cache(maxsize=4)
def _read(name: str) -> bytes:
    return (swagger_dir() / name).read_bytes()


@router.api_route("/docs", methods=["GET", "HEAD"], response_class=HTMLResponse)
def docs_page() -> HTMLResponse:
    """The interactive API documentation."""
    headers = {**PAGE_HEADERS, "Content-Security-Policy": DOCS_CSP}
    return HTMLResponse(read_asset("docs.html"), headers=headers)


@router.api_route("/docs/{name}", methods=["GET", "HEAD"])
def docs_asset(name: str) -> Response:
    """Swagger UI's script and styles, and the script that starts it."""
    if name == "docs.js":
        body, media_type = read_asset("docs.js").encode(), "text/javascript; charset=utf-8"
    elif name in _FILES:
        body, media_type = _read(name), _FILES[name]
    else:
        raise HTTPException(status_code=404, detail="not found")
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(body, media_type=media_type, headers=headers)
