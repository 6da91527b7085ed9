"""Sync a web source into its mirror: discover pages (sitemaps or a crawl), fetch each politely
with a conditional GET, keep the main content of pages and the PDF and Word files they link to.

Pages are fetched a level at a time (the sitemap's pages, then the files they link to; or the
start page, then its links, and so on to ``max_depth``), two at a time, and applied in level
order, so the same site always gives the same mirror, whichever answer arrived first. A page
that now answers 404 or 410 is removed; one that fails (timeout, 5xx, too large) keeps its
previous copy. A page no longer listed or linked is removed only when discovery was complete:
after a failure or the time cap, what was not reached keeps its copy.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rag.ingest.urls import STATE_FILE
from rag.sources.config import WebSource
from rag.sources.extract import read_page
from rag.sources.fetch import Answer, Fetcher, FetchFailed, RedirectRefused
from rag.sources.mirror import Staging
from rag.sources.report import SyncReport
from rag.sources.scope import Scope, followable, is_document_link, normalize, suffix
from rag.sources.sitemap import MAX_SITEMAP_BYTES, NotASitemap, listed_pages, looks_like_sitemap
from rag.sources.state import Entry, State, file_name, now, sha256

log = logging.getLogger(__name__)

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

Outcome = Literal["document", "unchanged", "gone", "error", "robots", "skipped"]


class SyncFailed(Exception):
    """The source as a whole could not be read (robots.txt, its sitemap or start page)."""


@dataclass
class Visit:
    """What asking for one URL gave."""

    url: str
    depth: int
    outcome: Outcome
    reason: str = ""
    final_url: str = ""
    status: int = 0
    doc_url: str = ""  # the URL the document is known by: canonical when in scope
    part: Path | None = None  # the file to keep, written into the staging directory
    ext: str = ""
    digest: str = ""
    links: list[str] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = ""


class WebSync:
    """One sync of one web source; ``run`` discovers and fetches, ``finish`` settles the rest."""

    def __init__(
        self,
        source: WebSource,
        mirror_dir: Path,
        fetcher: Fetcher,
        staging: Staging,
        previous: State,
        report: SyncReport,
    ) -> None:
        self.source = source
        self.mirror_dir = mirror_dir
        self.scope: Scope = fetcher.scope
        self.fetcher = fetcher
        self.staging = staging
        self.old = previous
        self.old_by_url = previous.by_url()
        self.new = State(source=source.label())
        self.report = report
        self.handled: set[str] = set()  # old file names already kept, replaced or dropped
        self.replaced: set[str] = set()  # old file names whose page now has another name
        self.claimed: dict[str, str] = {}  # a document's URL -> the URL that gave it first
        self.seen: set[str] = set()
        self.visits = 0
        self.parts = 0
        self.sitemap_mode = False
        # Whether every URL in scope was listed (sitemaps all read) and every link known (no
        # page within max_depth failed without a previous copy): only then is a page that was
        # not reached gone.
        self.listing_complete = True
        self.links_complete = True

    async def run(self, deadline: float) -> None:
        """Discover and fetch every page within the caps; raises SyncFailed."""
        start = normalize(self.source.url)
        assert start is not None  # validated by WebSource
        if not self.fetcher.allowed(start):
            raise SyncFailed(f"robots.txt disallows {start} for this User-Agent")
        self.seen.add(start)
        level: list[tuple[str, int]] = []
        try:
            async with asyncio.timeout_at(deadline):
                answer = await self._root(start)
                if answer.status == 200 and looks_like_sitemap(answer.body, answer.content_type):
                    self.sitemap_mode = True
                    try:
                        pages, self.listing_complete = await listed_pages(
                            self.fetcher, answer.url, answer.body, self.report
                        )
                    except NotASitemap as exc:
                        raise SyncFailed(f"{answer.url} is not a sitemap: {exc}") from None
                    self.seen.update(pages)
                    level = [(url, 0) for url in pages]
                else:
                    self.visits += 1
                    visit = await self._interpret(start, 0, answer)
                    level = self._next_level(self._apply(visit), 0)
        except TimeoutError:
            raise SyncFailed(
                f"{start} took longer than max_seconds ({self.source.max_seconds:g})"
            ) from None
        while level:
            # What robots.txt disallows is recorded without a request, and costs no page.
            for url, depth in level:
                if not self.fetcher.allowed(url):
                    self._apply(Visit(url, depth, "robots"))
            level = [(url, depth) for url, depth in level if self.fetcher.allowed(url)]
            budget = self.source.max_pages - self.visits
            if len(level) > budget:
                level = level[:budget]
                self.report.stopped = "max_pages"
            applied = [(self._apply(v), v.depth) for v in await self._visit_all(level, deadline)]
            if self.report.stopped == "max_seconds":
                break
            level = [item for links, depth in applied for item in self._next_level(links, depth)]

    async def _root(self, start: str) -> Answer:
        """The answer to the source's URL, a sitemap or a start page; SyncFailed if none."""
        cap = max(self.source.max_bytes_per_page, MAX_SITEMAP_BYTES)
        try:
            answer = await self.fetcher.get(start, self._validators, cap)
        except (FetchFailed, RedirectRefused) as exc:
            raise SyncFailed(f"{start}: {exc}") from None
        if answer.status not in (200, 304):
            raise SyncFailed(f"{start} answered HTTP {answer.status}")
        if len(answer.body) <= self.source.max_bytes_per_page or looks_like_sitemap(
            answer.body, answer.content_type
        ):
            return answer
        raise SyncFailed(f"{start}: larger than {self.source.max_bytes_per_page} bytes")

    def _next_level(self, links: list[str], depth: int) -> list[tuple[str, int]]:
        """The links of a page at ``depth`` that the next level fetches."""
        if depth + 1 > self.source.max_depth:
            return []
        out = []
        for link in links:
            wanted = is_document_link(link) if self.sitemap_mode else followable(link)
            if wanted and link not in self.seen:
                self.seen.add(link)
                out.append((link, depth + 1))
        return out

    async def _visit_all(self, level: list[tuple[str, int]], deadline: float) -> list[Visit]:
        """Visit a level's URLs, in order; those not done by the deadline are cancelled."""
        tasks = [asyncio.create_task(self._visit(url, depth)) for url, depth in level]
        self.visits += len(tasks)
        loop = asyncio.get_running_loop()
        done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
        if pending:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self.report.stopped = "max_seconds"
            self.listing_complete = self.links_complete = False
        return [task.result() for task in tasks if task in done]

    async def _visit(self, url: str, depth: int) -> Visit:
        """Ask for one URL (unless robots.txt disallows it) and read what comes back."""
        if not self.fetcher.allowed(url):
            return Visit(url, depth, "robots")
        try:
            answer = await self.fetcher.get(url, self._validators, self.source.max_bytes_per_page)
        except RedirectRefused as exc:
            if exc.why == "out of scope":
                return Visit(url, depth, "skipped", str(exc), final_url=exc.target)
            return Visit(url, depth, "robots", str(exc), final_url=exc.target)
        except FetchFailed as exc:
            return Visit(url, depth, "error", str(exc))
        return await self._interpret(url, depth, answer)

    async def _interpret(self, url: str, depth: int, answer: Answer) -> Visit:
        """What an answer means for the mirror; a page's content is extracted in a thread."""
        visit = Visit(url, depth, "skipped", final_url=answer.url, status=answer.status)
        visit.etag = answer.headers.get("etag")
        visit.last_modified = answer.headers.get("last-modified")
        visit.content_type = answer.content_type
        if answer.status == 304:
            visit.outcome = "unchanged"
            return visit
        if answer.status in (404, 410):
            visit.outcome, visit.reason = "gone", f"HTTP {answer.status}"
            return visit
        if answer.status != 200:
            visit.outcome, visit.reason = "error", f"HTTP {answer.status}"
            return visit
        ext = _document_type(answer)
        if ext is None:
            visit.reason = f"not a page or document ({answer.content_type or 'no Content-Type'})"
            return visit
        if "noindex" in answer.headers.get("x-robots-tag", "").lower():
            visit.reason = "X-Robots-Tag: noindex"
            return visit
        visit.ext, visit.doc_url = ext, answer.url
        data: bytes | None = answer.body
        if ext == ".html":
            try:
                page = await asyncio.to_thread(read_page, answer.body, answer.url, self.scope,
                                               answer.charset)  # fmt: skip
            except Exception as exc:  # a page the extractor chokes on costs that page only
                log.warning("cannot read %s: %r", answer.url, exc)
                visit.outcome, visit.reason = (
                    "error",
                    f"cannot read the page ({type(exc).__name__})",
                )
                return visit
            visit.doc_url, data = page.url, page.document
            visit.links = [] if page.nofollow else page.links
            if page.noindex:
                visit.reason, data = "the page asks not to be indexed (noindex)", None
            elif data is None:
                visit.reason = "no main content found"
        if data is not None:
            self.parts += 1
            visit.part = self.staging.path(f".part-{self.parts}")
            visit.part.write_bytes(data)
            visit.digest = sha256(data)
            visit.outcome = "document"
        return visit

    def _validators(self, url: str) -> dict[str, str]:
        """If-None-Match and If-Modified-Since for a URL mirrored before (and still there)."""
        found = self.old_by_url.get(url)
        if found is None or not (self.mirror_dir / found[0]).is_file():
            return {}
        _, entry = found
        headers = {}
        if entry.etag:
            headers["If-None-Match"] = entry.etag
        if entry.last_modified:
            headers["If-Modified-Since"] = entry.last_modified
        return headers

    def _old(self, *urls: str) -> tuple[str, Entry] | None:
        for url in urls:
            if url and url in self.old_by_url:
                return self.old_by_url[url]
        return None

    def _apply(self, visit: Visit) -> list[str]:
        """Record one visit in the next mirror and the report; returns the links to follow."""
        report = self.report
        if visit.final_url:
            self.seen.add(visit.final_url)  # reached through a redirect: not to be asked again
        old = self._old(visit.final_url, visit.url)
        if visit.outcome == "document":
            return self._apply_document(visit, old)
        if visit.outcome == "unchanged" and old is not None:
            name, entry = old
            if name in self.handled or not self._claim(entry.canonical_url, visit.url):
                report.skipped[visit.url] = f"the same page as {entry.canonical_url}"
                return []
            self._keep(name, entry.model_copy(update={"status": 304, "error": None,
                                                      "checked_at": now()}))  # fmt: skip
            report.unchanged += 1
            return entry.links
        if visit.outcome == "error" or visit.outcome == "unchanged":
            # A 304 for a file no longer in the mirror cannot happen (no validators were sent),
            # but a server may send one anyway: it is an error like any other.
            report.errors[visit.url] = visit.reason or "HTTP 304 for a page not mirrored"
            if old is not None and old[0] not in self.handled:
                name, entry = old
                self._keep(name, entry.model_copy(update={
                    "status": visit.status, "error": report.errors[visit.url],
                    "checked_at": now()}))  # fmt: skip
                return entry.links
            if visit.depth < self.source.max_depth:
                self.links_complete = False
            return []
        if old is not None:
            self.handled.add(old[0])  # gone, disallowed or skipped now: its copy goes
        if visit.outcome == "robots":
            report.skipped_robots.append(visit.url)
        else:
            report.skipped[visit.url] = visit.reason
        return visit.links

    def _apply_document(self, visit: Visit, old: tuple[str, Entry] | None) -> list[str]:
        assert visit.part is not None
        if not self._claim(visit.doc_url, visit.url):
            self.report.skipped[visit.url] = f"the same page as {self.claimed[visit.doc_url]}"
            visit.part.unlink()
            return visit.links
        old = self._old(visit.doc_url) or old
        name = file_name(visit.doc_url, visit.ext)
        stamp = now()
        entry = Entry(
            url=visit.final_url, canonical_url=visit.doc_url, etag=visit.etag,
            last_modified=visit.last_modified, sha256=visit.digest,
            content_type=visit.content_type, status=200, fetched_at=stamp, checked_at=stamp,
            depth=visit.depth, links=visit.links,
        )  # fmt: skip
        self.report.fetched += 1
        if old is not None and old[0] not in self.handled:
            old_name, old_entry = old
            self.handled.add(old_name)
            same = old_name == name and old_entry.sha256 == visit.digest
            if same and (self.mirror_dir / name).is_file():
                # The same content (a page whose sidebar changed, say): the file stays as it was.
                self.report.unchanged += 1
                entry.fetched_at = old_entry.fetched_at
                visit.part.unlink()
                self._keep(name, entry)
                return visit.links
            self.report.changed += 1
            if old_name != name:
                self.replaced.add(old_name)
        else:
            self.report.added += 1
        os.replace(visit.part, self.staging.path(name))
        self.new.files[name] = entry
        return visit.links

    def _claim(self, doc_url: str, url: str) -> bool:
        """Whether ``doc_url`` is not yet in the next mirror (then it is now, from ``url``)."""
        if doc_url in self.claimed:
            return False
        self.claimed[doc_url] = url
        self.seen.add(doc_url)
        return True

    def _keep(self, name: str, entry: Entry) -> None:
        """Carry an old file into the next mirror with an updated entry."""
        self.handled.add(name)
        try:
            self.staging.keep(name)
        except FileNotFoundError:  # removed from the mirror by hand: fetched again next time
            return
        self.new.files[name] = entry

    def finish(self) -> State:
        """Decide what happens to old files not reached, count removals; the next state."""
        for name, entry in self.old.files.items():
            if name in self.handled:
                continue
            in_scope = self.scope.contains(entry.url) and self.fetcher.allowed(entry.url)
            complete = self.listing_complete and (
                (self.sitemap_mode and entry.depth == 0) or self.links_complete
            )
            if in_scope and not complete:
                self._keep(name, entry)
            else:
                self.handled.add(name)
        gone = set(self.old.files) - set(self.new.files) - self.replaced
        self.report.removed = len(gone)
        self.report.documents = len(self.new.files)
        self.new.synced_at = now()
        return self.new


def _foreign(mirror_dir: Path) -> bool:
    """Whether ``mirror_dir`` exists with files in it but was never written by a sync."""
    if not mirror_dir.is_dir() or (mirror_dir / STATE_FILE).exists():
        return False
    return any(mirror_dir.iterdir())


def _document_type(answer: Answer) -> str | None:
    """The file suffix an answer is kept under: a page, a PDF or a Word file; None otherwise."""
    ctype, body = answer.content_type, answer.body
    if ctype in HTML_TYPES:
        return ".html"
    if ctype == "application/pdf" or body.startswith(b"%PDF-"):
        return ".pdf"
    if ctype == DOCX_TYPE or (suffix(answer.url) == ".docx" and body.startswith(b"PK\x03\x04")):
        return ".docx"
    if not ctype and body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return ".html"
    return None


async def sync_web(source: WebSource, mirror_dir: Path, report: SyncReport) -> None:
    """Sync ``source`` into ``mirror_dir``, filling ``report``; SyncFailed leaves it as it was."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + source.max_seconds
    scope = Scope.of(source.url, source.include)
    if _foreign(mirror_dir):
        # A sync replaces the whole folder: pointed at a folder of someone's documents by
        # mistake, it would delete them.
        raise SyncFailed(f"{mirror_dir} holds files but no {STATE_FILE}: it is not a mirror")
    previous = State.read(mirror_dir)
    async with Fetcher(source, scope) as fetcher:
        try:
            async with asyncio.timeout_at(deadline):
                await fetcher.load_robots()
        except (FetchFailed, RedirectRefused) as exc:
            raise SyncFailed(f"{scope.robots_url()}: {exc}") from None
        except TimeoutError:
            raise SyncFailed(f"{scope.robots_url()}: no answer within max_seconds") from None
        finally:
            report.delay_seconds = fetcher.delay
            report.requests = fetcher.requests
        staging = Staging(mirror_dir)
        try:
            sync = WebSync(source, mirror_dir, fetcher, staging, previous, report)
            try:
                await sync.run(deadline)
            finally:
                report.requests = fetcher.requests
            state = sync.finish()
            for part in staging.dir.glob(".part-*"):
                part.unlink()
            state.write(staging.dir)
            staging.commit()
        except BaseException:
            staging.discard()
            raise
