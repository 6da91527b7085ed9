"""Importing rag changes nothing in the process; the entry points set their switches themselves,
and the library stays offline without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.runtime import PROCESS_ENV, configure_process

ROOT = Path(__file__).resolve().parent.parent

_IMPORT_ALL = """
import importlib, json, os, pkgutil, signal, sys
before = dict(os.environ)
handler = signal.getsignal(signal.SIGINT)
import rag
names = [m.name for m in pkgutil.walk_packages(rag.__path__, 'rag.')]
for name in names:
    importlib.import_module(name)
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(json.dumps({"modules": len(names), "changed": changed,
                  "sigint_kept": signal.getsignal(signal.SIGINT) is handler}))
"""

# Any connection attempt fails loudly and is counted: a hub lookup cannot hide behind a cache.
_LOAD_OFFLINE = """
import json, socket
tried = []
def refuse(self, address, *args):
    tried.append(str(address))
    raise OSError("network use in an offline test")
socket.socket.connect = refuse
from rag.models.embedder import load_embedder
vectors = load_embedder().embed(["what does a data engineer do"])
print(json.dumps({"tried": tried, "shape": list(vectors.shape)}))
"""


def _clean_env() -> dict[str, str]:
    """This environment without the switches, as a program that imports rag would have it."""
    return {k: v for k, v in os.environ.items() if k not in PROCESS_ENV and k != "PYTHONWARNINGS"}


def test_importing_every_rag_module_leaves_the_environment_and_signals_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=_clean_env(),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["modules"] > 50
    assert report["changed"] == []
    assert report["sigint_kept"] is True


def test_configure_process_sets_each_switch_but_keeps_an_explicit_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in PROCESS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    configure_process()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    for name, value in PROCESS_ENV.items():
        if name != "OMP_WAIT_POLICY":
            assert os.environ[name] == value


@pytest.mark.slow
def test_the_bundled_model_loads_without_any_network_or_offline_switch() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_OFFLINE],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=_clean_env(),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"tried": [], "shape": [1, 384]}
