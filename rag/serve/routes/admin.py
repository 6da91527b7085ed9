"""Routes: /admin, the coverage report for the owners of the guides (off unless RAG_ADMIN_TOKEN).

Off, every /admin path answers 404, as any path that does not exist. On, the report and its
exports take the token as ``Authorization: Bearer TOKEN`` (scripts) or as the cookie the sign-in
form at /admin/login sets (browsers): HttpOnly, SameSite=Strict, path /admin, Secure over HTTPS,
holding an HMAC of the token rather than the token. The form is posted, never put in a URL, so
the token stays out of access logs and browser history. A wrong or missing token gets 401 in the
API's JSON error shape; tokens are compared with ``hmac.compare_digest``.

The log is read (and the page rendered) in a worker thread: a large log must not hold up the
event loop. The page has no script, and its CSP allows only its own inline stylesheet, by hash.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import partial
from typing import Annotated, Any
from urllib.parse import parse_qs

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from rag.analytics.report import build_report, parse_since, render_html, render_login, to_csv
from rag.analytics.report.html import STYLE_HASH
from rag.serve.services import Services, Svc

router = APIRouter(prefix="/admin", include_in_schema=False)

LOGIN_PATH = "/admin/login"
COOKIE = "rag_admin"
COOKIE_MAX_AGE = 8 * 3600  # a browser signs in again after a working day
ADMIN_CSP = (
    f"default-src 'none'; style-src {STYLE_HASH}; img-src data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Cache-Control": "no-store",  # the report quotes what readers asked: keep it out of caches
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_HEADERS = {**HEADERS, "Content-Security-Policy": ADMIN_CSP}
Since = Annotated[str | None, Query(max_length=100, description="a date or a duration: 7d")]


def _enabled(svc: Services) -> str:
    """The admin token; 404 (as for any unknown path) when none is configured."""
    token = svc.settings.admin_token
    if not token:
        raise HTTPException(404, detail="Not Found")
    return token


def session_value(token: str) -> str:
    """What the sign-in cookie holds: an HMAC of the token, so the cookie never is the token."""
    return hmac.new(token.encode(), b"career-rag admin session", hashlib.sha256).hexdigest()


def authorised(request: Request, token: str) -> bool:
    """Whether the request carries the token (Bearer header) or the sign-in cookie."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        return hmac.compare_digest(given.strip().encode(), token.encode())
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return hmac.compare_digest(cookie.encode(), session_value(token).encode())
    return False


def _unauthorised(detail: str) -> HTTPException:
    headers = {**HEADERS, "WWW-Authenticate": 'Bearer realm="career-rag admin"'}
    return HTTPException(401, detail=detail, headers=headers)


def admin(request: Request, svc: Svc) -> Services:
    """The shared services for a request that carries the admin token; 404 when /admin is off."""
    token = _enabled(svc)
    if not authorised(request, token):
        raise _unauthorised(
            "the admin token is missing or wrong: send Authorization: Bearer TOKEN, "
            "or sign in at /admin/login"
        )
    return svc


Admin = Annotated[Services, Depends(admin)]


async def _report(svc: Services, since: str | None, render: Any = None) -> Any:
    """The report dict (or ``render`` of it), built from the log in a worker thread."""
    when = parse_since(since) if since and since.strip() else None
    current = svc.current  # the document list only: no request count is needed to read it
    if current is not None:
        documents, missing = list(current.documents), None
    else:
        documents, missing = None, svc.error or "the index is still loading"

    def work() -> Any:
        report = build_report(
            svc.settings.data_dir, documents, since=when, documents_missing=missing
        )
        return render(report) if render else report

    return await anyio.to_thread.run_sync(work)


@router.api_route("", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def report_page(svc: Admin, since: Since = None) -> HTMLResponse:
    """The coverage report as a page with charts."""
    page = await _report(svc, since, partial(render_html, admin=True))
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/report.csv")
async def report_csv(svc: Admin, since: Since = None) -> Response:
    """The coverage report as one CSV, a ``section`` column first."""
    text = await _report(svc, since, to_csv)
    headers = {**HEADERS, "Content-Disposition": 'attachment; filename="coverage-report.csv"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/report.json")
async def report_json(svc: Admin, since: Since = None) -> JSONResponse:
    """The coverage report's dict, as ``rag report --json`` prints it."""
    return JSONResponse(await _report(svc, since), headers=HEADERS)


@router.api_route("/login", methods=["GET", "HEAD"], response_class=HTMLResponse)
def login_page(svc: Svc) -> HTMLResponse:
    """The sign-in form."""
    _enabled(svc)
    return HTMLResponse(render_login(), headers=PAGE_HEADERS)


@router.post("/login")
async def login(request: Request, svc: Svc) -> Response:
    """Check the posted token; set the session cookie and go to the report, or 401."""
    token = _enabled(svc)
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    given = (form.get("token") or [""])[0].strip()
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise _unauthorised("wrong admin token")
    response = RedirectResponse("/admin", status_code=303, headers=HEADERS)
    response.set_cookie(
        COOKIE,
        session_value(token),
        max_age=COOKIE_MAX_AGE,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(svc: Svc) -> Response:
    """Forget the session cookie and go back to the sign-in form."""
    _enabled(svc)
    response = RedirectResponse(LOGIN_PATH, status_code=303, headers=HEADERS)
    response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="strict")
    return response
