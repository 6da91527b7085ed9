"""Routes: /admin, the coverage report for the owners of the guides (off unless RAG_ADMIN_TOKEN).

Off, every /admin path answers 404, as any path that does not exist. On, the report and its
exports take the token as ``Authorization: Bearer TOKEN`` (scripts) or as the cookie the sign-in
form at /admin/login sets (browsers): HttpOnly, SameSite=Strict, path /admin, Secure over HTTPS,
holding a session checked on the server (rag.serve.admin_auth), never the token. The form is
posted, never put in a URL, so the token stays out of access logs and browser history. A wrong
or missing token gets 401 in the API's JSON error shape; tokens are compared with
``hmac.compare_digest``. Each wrong token, session or sign-in counts against the client's budget
of failures; past it every /admin request of the client gets 429.

On a server with several collections each report is one collection's (``?collection=NAME``,
the default one without it), or every collection's at once with ``?collection=all``: one page
with each report in turn, JSON ``{"collections": {NAME: report}}``, CSV with a ``collection``
column. The log is read (and the page rendered) in a worker thread: a large log must not hold
up the event loop. The page has no script, and its CSP allows only its own inline stylesheet, by hash.
"""

from __future__ import annotations

import hmac
from functools import partial
from typing import Annotated, Any
from urllib.parse import parse_qs

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from rag.analytics.report import (
    build_report,
    parse_since,
    render_all_html,
    render_html,
    render_login,
    to_csv,
    to_csv_all,
)
from rag.analytics.report.html import STYLE_HASH
from rag.collections import ALL
from rag.serve.admin_auth import SESSION_TTL_S, AdminAuth
from rag.serve.deps import Server
from rag.serve.services import Services
from rag.serve.state import ServerState

router = APIRouter(prefix="/admin", include_in_schema=False)

LOGIN_PATH = "/admin/login"
COOKIE = "rag_admin"
COOKIE_MAX_AGE = SESSION_TTL_S  # the browser forgets it when the server does
# The sign-in form has one field; a body of many more is no form of ours.
MAX_FORM_FIELDS = 10
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


def _enabled(state: ServerState) -> str:
    """The admin token; 404 (as for any unknown path) when none is configured."""
    token = state.settings.admin_token
    if not token:
        raise HTTPException(404, detail="Not Found")
    return token


def _auth(request: Request) -> AdminAuth:
    auth: AdminAuth | None = getattr(request.app.state, "admin_auth", None)
    if auth is None:  # the lifespan has not started
        raise HTTPException(503, detail="the server is starting", headers={"Retry-After": "5"})
    return auth


def _client(request: Request) -> str:
    # ProxyHeadersMiddleware has set it from X-Forwarded-For when the peer is a trusted proxy.
    return request.client.host if request.client else "unknown"


async def _within_budget(auth: AdminAuth, client: str) -> None:
    """429 once ``client`` has used up its failed authentications, whatever it sends now."""
    retry = await auth.failures.retry_after(client)
    if retry is not None:
        detail = (
            f"too many failed admin authentications from this client (at most "
            f"{auth.failures.rate}): try again in {retry} s"
        )
        raise HTTPException(429, detail=detail, headers={**HEADERS, "Retry-After": str(retry)})


async def authorised(
    request: Request, token: str, auth: AdminAuth, state: ServerState
) -> bool | None:
    """Whether the Bearer token (or an admin key) or the session cookie is good; None when
    neither is sent."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        if hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
        key = await anyio.to_thread.run_sync(state.access.keys.check, given.strip())
        return key is not None and key.admin
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return await anyio.to_thread.run_sync(auth.sessions.valid, cookie)
    return None


def _unauthorised(detail: str) -> HTTPException:
    headers = {**HEADERS, "WWW-Authenticate": 'Bearer realm="career-rag admin"'}
    return HTTPException(401, detail=detail, headers=headers)


async def admin(request: Request, state: Server) -> ServerState:
    """The server, for a request with the admin token; 404 when off, 429 past the budget."""
    token = _enabled(state)
    auth, client = _auth(request), _client(request)
    await _within_budget(auth, client)
    verdict = await authorised(request, token, auth, state)
    if not verdict:
        if verdict is False:
            await auth.failures.failed(client)
        raise _unauthorised(
            "the admin token is missing or wrong: send Authorization: Bearer TOKEN, "
            "or sign in at /admin/login"
        )
    return state


Admin = Annotated[ServerState, Depends(admin)]
Collection = Annotated[
    str | None,
    Query(max_length=100, description="which collection (default: the default one), or all"),
]


async def _report(
    state: ServerState,
    since: str | None,
    collection: str | None,
    render: Any = None,
    render_all: Any = None,
) -> Any:
    """The report dict (or ``render`` of it) of one collection's log, or with ``all`` the
    reports of every collection (``render_all`` of them), built in a worker thread."""
    every = collection == ALL
    chosen = [svc for _, svc in state.collections()] if every else [_collection(state, collection)]
    when = parse_since(since) if since and since.strip() else None
    documents: dict[str, tuple[list[dict[str, Any]] | None, str | None]] = {}
    for svc in chosen:
        current = svc.current  # the document list only: no request count is needed to read it
        if current is not None:
            documents[svc.name] = (list(current.documents), None)
        else:
            documents[svc.name] = (None, svc.error or "the index is still loading")

    def one(svc: Services) -> dict[str, Any]:
        listed, missing = documents[svc.name]
        report = build_report(svc.settings.data_dir, listed, since=when, documents_missing=missing)
        report["collection"] = svc.name
        return report

    def work() -> Any:
        if every:
            reports = {svc.name: one(svc) for svc in chosen}
            return render_all(reports) if render_all else {"collections": reports}
        report = one(chosen[0])
        return render(report) if render else report

    return await anyio.to_thread.run_sync(work)


def _collection(state: ServerState, name: str | None) -> Services:
    """The services of the collection asked for (the default, else the first one)."""
    if name is None:
        name = state.catalog.default or next(iter(state.catalog.collections))
    return state.services[state.catalog.get(name).name]


@router.api_route("", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def report_page(
    state: Admin, since: Since = None, collection: Collection = None
) -> HTMLResponse:
    """The coverage report as a page with charts."""
    names = list(state.catalog.collections)
    page = await _report(
        state,
        since,
        collection,
        partial(render_html, admin=True, collections=names),
        partial(render_all_html, admin=True, collections=names),
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/report.csv")
async def report_csv(state: Admin, since: Since = None, collection: Collection = None) -> Response:
    """The coverage report as one CSV, a ``section`` column first (``collection`` before it
    for all of them)."""
    text = await _report(state, since, collection, to_csv, to_csv_all)
    headers = {**HEADERS, "Content-Disposition": 'attachment; filename="coverage-report.csv"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/report.json")
async def report_json(
    state: Admin, since: Since = None, collection: Collection = None
) -> JSONResponse:
    """The coverage report's dict, as ``rag report --json`` prints it."""
    return JSONResponse(await _report(state, since, collection), headers=HEADERS)


@router.api_route("/login", methods=["GET", "HEAD"], response_class=HTMLResponse)
def login_page(state: Server) -> HTMLResponse:
    """The sign-in form."""
    _enabled(state)
    return HTMLResponse(render_login(), headers=PAGE_HEADERS)


@router.post("/login")
async def login(request: Request, state: Server) -> Response:
    """Check the posted token; set the session cookie and go to the report, 401 or 429."""
    token = _enabled(state)
    auth, client = _auth(request), _client(request)
    await _within_budget(auth, client)
    body = (await request.body()).decode("utf-8", "replace")
    try:
        form = parse_qs(body, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # more fields than that: no form of ours
        raise HTTPException(
            400, detail=f"the sign-in form has more than {MAX_FORM_FIELDS} fields: post token"
        ) from None
    given = (form.get("token") or [""])[0].strip()
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        await auth.failures.failed(client)
        raise _unauthorised("wrong admin token")
    response = RedirectResponse("/admin", status_code=303, headers=HEADERS)
    response.set_cookie(
        COOKIE,
        await anyio.to_thread.run_sync(auth.sessions.issue),
        max_age=COOKIE_MAX_AGE,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request, state: Server) -> Response:
    """End the session (the cookie no longer works anywhere) and go back to the sign-in form."""
    _enabled(state)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        await anyio.to_thread.run_sync(_auth(request).sessions.revoke, cookie)
    response = RedirectResponse(LOGIN_PATH, status_code=303, headers=HEADERS)
    response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="strict")
    return response
