"""Real servers and a real headless Chromium for the browser tests and the README screenshots.

``python -m tests.browser_helpers [OUT_DIR]`` indexes the real corpus with the real model, serves
it, and saves ``widget-demo.png`` and ``chat-page.png`` into OUT_DIR (default ``docs/``).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's Chromium (or ``$CHROMIUM``), or None when it is not installed."""
    candidates = [os.environ.get("CHROMIUM", ""), "/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def widget_tag(api: str, **attrs: str) -> str:
    """The one-tag embed snippet, as a host page would paste it."""
    extra = "".join(f' data-{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<script src="{api}/widget.js" data-api="{api}"{extra} defer></script>'


def host_page(api: str, heading: str = "Host page", **attrs: str) -> str:
    """A minimal foreign page with hostile global CSS and the widget snippet."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{heading}</title><link rel='icon' href='data:,'>"
        "<style>*{font-family:serif!important;color:red}button{background:lime}</style>"
        f"</head><body><h1>{heading}</h1><p>Some content of the host site.</p>"
        f"{widget_tag(api, **attrs)}</body></html>"
    )


class LiveServer:
    """An ASGI app served by uvicorn on 127.0.0.1 from a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self, timeout: float = 120.0) -> LiveServer:
        """Start serving; returns once the app's lifespan has finished starting."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"uvicorn on {self.url} exited during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on {self.url} did not start in {timeout:.0f} s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for it."""
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


class StaticSite:
    """A tiny HTTP server on its own port (so its own origin) serving pages from a dict."""

    def __init__(self) -> None:
        pages: dict[str, str] = {}
        self.pages = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                data = body.encode()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Sites:
    """Static host pages on two origins: ``allowed`` is on the API's CORS allowlist."""

    allowed: StaticSite
    refused: StaticSite


@dataclass
class Tab:
    """A fresh browser context with one page, recording dialogs and page errors."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> Any:
        """Record what ``page`` (the first page or a popup) does that it must not."""
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page


@contextmanager
def browser_session() -> Iterator[Any]:
    """One headless Chromium; raises RuntimeError with a clear message when it is missing."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError(
            "Chromium is not installed: the browser tests drive Debian's Chromium at "
            "/usr/bin/chromium (or $CHROMIUM). Install it with `apt-get install -y chromium`."
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def serve_index(
    index_dir: Path,
    retriever: Any,
    cors_origins: list[str],
    data_dir: Path,
    corpus_dir: Path = ROOT / "corpus",
) -> Iterator[LiveServer]:
    """The real app (``rag.serve.app.create_app``) over one index, for the duration of the block."""
    from rag.config import Settings
    from rag.serve.app import create_app

    settings = Settings(
        index_dir=index_dir, corpus_dir=corpus_dir, cors_origins=cors_origins,
        data_dir=data_dir,
    )  # fmt: skip
    server = LiveServer(create_app(settings, retriever)).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve_collections(
    config: Path, index_dir: Path, data_dir: Path, cors_origins: list[str]
) -> Iterator[LiveServer]:
    """The real app over the collections of a config file (each index under ``index_dir``),
    once every public one is loaded."""
    import httpx

    from rag.config import Settings
    from rag.serve.app import create_app

    settings = Settings(
        config=config, index_dir=index_dir, data_dir=data_dir, cors_origins=cors_origins
    )
    server = LiveServer(create_app(settings)).start()
    try:
        deadline = time.monotonic() + 120
        while not all(
            c["ready"] for c in httpx.get(f"{server.url}/collections").json()["collections"]
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the collections of {config} did not load in 120 s")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()


def ask_widget(page: Any, question: str) -> Any:
    """Open the widget on ``page``, ask ``question``; returns the answer block locator."""
    page.get_by_role("button", name="Ask", exact=False).first.click()
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")
    return page.locator("career-rag-widget .a").last


def wait_settled(locator: Any, timeout: float = 60_000) -> None:
    """Wait until an answer block (chat page or widget) is no longer busy."""
    from playwright.sync_api import expect

    expect(locator).to_have_attribute("aria-busy", "false", timeout=timeout)


# --------------------------------------------------------------------------- screenshots


def make_screenshots(out_dir: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Save the widget on the demo page and a two-turn chat, using the real index."""
    from playwright.sync_api import expect

    from rag.index import build_index, load_index
    from rag.models.embedder import load_embedder
    from rag.search.retriever import Retriever

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log("indexing the corpus with the real model...")
        embedder = load_embedder()
        build_index(ROOT / "corpus", Path(tmp) / "index", embedder)
        retriever = Retriever.from_index(load_index(Path(tmp) / "index"))
        with (
            serve_index(Path(tmp) / "index", retriever, [], Path(tmp) / "data") as server,
            browser_session() as browser,
        ):
            saved = []
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/demo")
            answer = ask_widget(page, "What skills does an ML fraud engineer need?")
            wait_settled(answer)
            expect(answer.locator(".sources li").first).to_be_visible()
            page.mouse.move(0, 0)
            path = out_dir / "widget-demo.png"
            page.screenshot(path=str(path))
            saved.append(path)

            page = browser.new_page(viewport={"width": 1280, "height": 1150})
            page.goto(f"{server.url}/")
            for question in ("What does a lead data scientist do?", "How much do they earn?"):
                page.get_by_label("Your question").fill(question)
                page.get_by_label("Your question").press("Enter")
                wait_settled(page.locator("#conversation"))
            expect(page.locator(".msg-assistant .feedback")).to_have_count(2)
            # Both turns in view: the first question at the top of the window.
            page.locator(".msg-user").first.evaluate(
                "e => window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 16)"
            )
            page.mouse.move(0, 0)
            path = out_dir / "chat-page.png"
            page.screenshot(path=str(path))
            saved.append(path)
    for p in saved:
        log(f"saved {p}")
    return saved


if __name__ == "__main__":
    make_screenshots(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs")
