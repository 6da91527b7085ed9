"""One build at a time per index directory, and removal of what dead builds left behind.

A build writes into ``.<name>.tmp-<pid>-<random>`` beside the index and swaps it into place. A
build that is killed (``kill -9``, power loss) leaves that directory; the next build, holding the
lock, removes the ones whose owner process is gone, and only those.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rag.errors import IndexBusy

# Temporary directories from before they carried their owner's pid: removed once this old.
LEGACY_DEBRIS_AGE_S = 3600


def lock_path(index_dir: Path) -> Path:
    """The lock file of an index directory: a hidden sibling, so a swap never moves it."""
    return index_dir.parent / f".{index_dir.name}.lock"


@contextmanager
def build_lock(index_dir: Path, timeout: float = 0) -> Iterator[None]:
    """Hold the index's build lock; wait up to ``timeout`` seconds, then raise IndexBusy."""
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(index_dir)
    info = path.with_name(path.name + ".owner")
    lock = FileLock(path, timeout=timeout, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise IndexBusy(
            f"another build is writing the index at {index_dir}{_holder(info)}: wait for it, "
            "or pass --wait SECONDS"
        ) from None
    try:
        info.write_text(json.dumps(_me()))
        yield
    finally:
        info.unlink(missing_ok=True)
        lock.release()


def new_temp_dir(index_dir: Path) -> Path:
    """A fresh temporary sibling of ``index_dir``, named after this process as its owner."""
    tmp = sibling(index_dir, "tmp")
    tmp.mkdir()
    return tmp


def sibling(index_dir: Path, kind: str) -> Path:
    """``.<name>.<kind>-<pid>-<process start>-<random>``: whose it is, readable by name alone."""
    me = os.getpid()
    started = _process_started(me) or "0"
    return index_dir.parent / f".{index_dir.name}.{kind}-{me}-{started}-{uuid.uuid4().hex[:8]}"


def remove_debris(index_dir: Path) -> list[str]:
    """Remove the temporary directories of dead builds of ``index_dir``; returns their names.

    Call it holding the build lock: no live build of this program can then own one, but the
    owner's pid and start time are checked anyway, so a build that ignores the lock (an older
    version of this program) is never robbed of its directory.
    """
    removed = []
    for path in index_dir.parent.glob(f".{index_dir.name}.*"):
        kind, _, owner = path.name[len(index_dir.name) + 2 :].partition("-")
        if kind not in ("tmp", "old") or not path.is_dir() or _owner_alive(path, owner):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path.name)
    return removed


def _owner_alive(path: Path, owner: str) -> bool:
    parts = owner.split("-")
    if len(parts) != 3 or not parts[0].isdigit():
        # Named before names carried their owner: judged by age alone.
        try:
            return time.time() - path.stat().st_mtime < LEGACY_DEBRIS_AGE_S
        except OSError:
            return False
    pid, started = int(parts[0]), parts[1]
    if started == "0":  # no /proc here: the pid alone must do
        return _pid_exists(pid)
    return _process_started(pid) == started


def _me() -> dict[str, object]:
    return {"pid": os.getpid()}


def _process_started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: a reused pid has another one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses; fields after it do not.
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(info: Path) -> str:
    try:
        pid = int(json.loads(info.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return f" (pid {pid})"
