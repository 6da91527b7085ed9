"""Watch mode: the library loop (rag.index.watch) with a recording build, and ``rag index
--watch`` as a real process on the real model, stopped by Ctrl-C at each moment it can land.

The real processes start with SIGINT ignored, as a shell without job control starts ``cmd &``
(and every child of such a process, a test run's included): Ctrl-C must still stop the watch.
Run with -s for the time from SIGINT to exit at each moment.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.index import Manifest
from rag.index.watch import WatchEvent, watch_corpus

ROOT = Path(__file__).resolve().parent.parent
NEW_GUIDE = "# Actuary\n\nAn actuary prices insurance risk with statistics.\n\n## Salary\n\nAbout $110,000.\n"
HANG_GUARD_S = 120  # only ever reached when something hangs; never a measure of speed


# --------------------------------------------------------------------------- the library loop


class Recorder:
    """A build that records its calls, and the watch's events, each waited on as it happens."""

    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.builds: queue.Queue[bool] = queue.Queue()  # each build's ``full``
        self.count = 0
        self.events: queue.Queue[WatchEvent] = queue.Queue()
        self.fail_on = fail_on or set()

    def build(self, full: bool) -> None:
        self.count += 1
        self.builds.put(full)
        if self.count in self.fail_on:
            raise RagError(f"build {self.count} failed")

    def next_build(self) -> bool:
        return self.builds.get(timeout=HANG_GUARD_S)

    def next_event(self) -> WatchEvent:
        return self.events.get(timeout=HANG_GUARD_S)

    def until(self, kind: str) -> WatchEvent:
        """The next event of this kind (events of other kinds before it are passed over)."""
        while (event := self.next_event()).kind != kind:
            pass
        return event


@pytest.fixture
def watching(small_corpus: Path, tmp_path: Path) -> Iterator[Callable[..., Recorder]]:
    """Start watch_corpus in a thread; stops it (and fails on a hang) at teardown."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(index_dir: Path | None = None, **options: object) -> Recorder:
        recorder = Recorder(options.pop("fail_on", None))  # type: ignore[arg-type]
        thread = threading.Thread(
            target=watch_corpus,
            args=(small_corpus, index_dir or tmp_path / "index", recorder.build),
            kwargs={"on_event": recorder.events.put, "stop": stop, **options},
            daemon=True,
        )
        thread.start()
        threads.append(thread)
        assert recorder.next_event().kind == "watching"
        return recorder

    yield start
    stop.set()
    for thread in threads:
        thread.join(HANG_GUARD_S)
        assert not thread.is_alive(), "the watch did not end when asked to stop"


def test_watch_builds_then_rebuilds_after_a_change(watching, small_corpus: Path) -> None:
    recorder = watching(debounce_ms=100, full=True)
    assert recorder.next_build() is True  # the first build is as asked: full
    (small_corpus / "actuary.md").write_text(NEW_GUIDE)
    changed = recorder.next_event()
    assert changed.kind == "changed" and changed.paths == (str(small_corpus / "actuary.md"),)
    rebuilding = recorder.until("rebuilding")
    assert rebuilding.paths == (str(small_corpus / "actuary.md"),)
    assert recorder.next_build() is False  # every rebuild is incremental
    (small_corpus / "second.md").write_text("# Second\n\nAnother guide.\n")
    assert recorder.until("rebuilding").paths == (str(small_corpus / "second.md"),)
    assert recorder.next_build() is False


def test_a_failed_rebuild_is_reported_and_the_watch_goes_on(watching, small_corpus: Path) -> None:
    recorder = watching(debounce_ms=100, fail_on={2})
    (small_corpus / "actuary.md").write_text(NEW_GUIDE)
    failed = recorder.until("failed")
    assert str(failed.error) == "build 2 failed"
    (small_corpus / "second.md").write_text("# Second\n\nAnother guide.\n")
    assert recorder.until("rebuilding").paths == (str(small_corpus / "second.md"),)
    assert [recorder.next_build() for _ in range(3)] == [False, False, False]


def test_the_index_and_its_temporary_siblings_inside_the_corpus_are_not_changes(
    watching, small_corpus: Path
) -> None:
    index_dir = small_corpus / "index"
    recorder = watching(index_dir=index_dir, debounce_ms=100)
    index_dir.mkdir()
    (index_dir / "manifest.json").write_text("{}")
    (small_corpus / ".index.tmp-1-2-abcdef").mkdir()
    (small_corpus / "actuary.md").write_text(NEW_GUIDE)
    # Had the index's own files counted, a rebuild would have started for them first.
    assert recorder.until("rebuilding").paths == (str(small_corpus / "actuary.md"),)


def test_a_first_build_that_fails_ends_the_watch(small_corpus: Path, tmp_path: Path) -> None:
    recorder = Recorder(fail_on={1})
    with pytest.raises(RagError, match="build 1 failed"):
        watch_corpus(small_corpus, tmp_path / "index", recorder.build, on_event=recorder.events.put)
    assert recorder.events.empty() and recorder.count == 1


# --------------------------------------------------------------------------- a real process


class WatchProcess:
    """``rag index --watch --json`` in a child started with SIGINT ignored; its output lines,
    both streams, are read as they come."""

    def __init__(self, corpus: Path, index_dir: Path, debounce_ms: int) -> None:
        env = {**os.environ, "RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(index_dir),
               "RAG_DATA_DIR": str(index_dir.parent / "data")}  # fmt: skip
        command = ["index", "--watch", "--debounce", str(debounce_ms), "--json"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag", *command],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.stderr: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr))
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            if name == "err":
                self.stderr.append(line)
            self.lines.put((name, line.rstrip("\n")))

    def line(self, name: str, matches: Callable[[str], bool]) -> str:
        """The next line on stdout ("out") or stderr ("err") that ``matches``."""
        while True:
            try:
                stream, line = self.lines.get(timeout=HANG_GUARD_S)
            except queue.Empty:
                pytest.fail(f"no matching line on std{name}; stderr so far: {self.stderr}")
            if stream == name and matches(line):
                return line

    def build(self) -> dict:
        """The JSON report of the next finished build."""
        return json.loads(self.line("out", lambda line: line.startswith("{")))

    def interrupt(self, moment: str) -> int:
        """Ctrl-C; returns the exit code, and prints how long the process took to exit."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {HANG_GUARD_S} s after Ctrl-C ({moment})")
        print(f"\nrag index --watch, Ctrl-C {moment}: exited in {time.monotonic() - start:.2f} s")
        for reader in self.readers:  # the last lines are read once the pipes close
            reader.join(HANG_GUARD_S)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def watch_process(small_corpus: Path, tmp_path: Path) -> Iterator[Callable[[int], WatchProcess]]:
    started: list[WatchProcess] = []

    def start(debounce_ms: int) -> WatchProcess:
        started.append(WatchProcess(small_corpus, tmp_path / "index", debounce_ms))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def temporary_dirs(index_dir: Path) -> list[Path]:
    return sorted(index_dir.parent.glob(f".{index_dir.name}.tmp-*"))


def wait_for_temporary_dir(index_dir: Path, process: WatchProcess) -> None:
    """Until a build's temporary directory exists: the build is under way."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not temporary_dirs(index_dir):
        assert process.proc.poll() is None, f"the watch ended early: {process.stderr}"
        assert time.monotonic() < deadline, "no build started"
        time.sleep(0.02)


def add_long_guides(corpus: Path, n: int = 60) -> None:
    """Enough text that embedding it takes a while after the temporary directory appears."""
    for i in range(n):
        body = " ".join(
            f"Engineer {i} works on system {j} with colleagues and writes careful reports."
            for j in range(30)
        )
        (corpus / f"guide-{i}.md").write_text(f"# Role {i}\n\n## Overview\n\n{body}\n")


@pytest.mark.slow
def test_watch_reindexes_after_a_change_and_stops_on_ctrl_c(
    watch_process, small_corpus: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    watch = watch_process(300)
    first = watch.build()
    assert first["counts"]["documents"] == 3
    (small_corpus / "actuary.md").write_text(NEW_GUIDE)
    second = watch.build()
    assert second["counts"]["documents"] == 4
    assert second["changes"]["documents"]["added"] == 1
    assert second["build_id"] != first["build_id"]
    assert Manifest.read(index_dir).build_id == second["build_id"]
    assert watch.interrupt("while waiting for changes") == 0
    assert watch.stderr[-1] == "Stopped watching.\n"


@pytest.mark.slow
def test_ctrl_c_during_the_first_build_stops_at_once_and_leaves_nothing(
    watch_process, small_corpus: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    add_long_guides(small_corpus)
    watch = watch_process(300)
    wait_for_temporary_dir(index_dir, watch)
    assert watch.interrupt("during the first build") == 0
    assert temporary_dirs(index_dir) == [] and not index_dir.exists()


@pytest.mark.slow
def test_ctrl_c_while_a_change_waits_out_the_debounce_stops_without_rebuilding(
    watch_process, small_corpus: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    watch = watch_process(600_000)  # the rebuild could not start before the test ends
    first = watch.build()
    (small_corpus / "actuary.md").write_text(NEW_GUIDE)
    watch.line("err", lambda line: "changed in the corpus: re-indexing after" in line)
    assert watch.interrupt("during the debounce") == 0
    assert Manifest.read(index_dir).build_id == first["build_id"]
    assert not any(line.startswith("Re-indexing") for line in watch.stderr)


@pytest.mark.slow
def test_ctrl_c_during_a_rebuild_stops_at_once_and_keeps_the_previous_index(
    watch_process, small_corpus: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    watch = watch_process(300)
    first = watch.build()
    add_long_guides(small_corpus)
    watch.line("err", lambda line: line.startswith("Re-indexing"))
    wait_for_temporary_dir(index_dir, watch)
    assert watch.interrupt("during a rebuild") == 0
    assert temporary_dirs(index_dir) == []
    assert Manifest.read(index_dir).build_id == first["build_id"]
