"""Without the [ray] extra nothing imports Ray, every command still starts, and --ray says
how to install it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A None entry in sys.modules makes `import ray` fail as if Ray were not installed.
_NO_RAY = "import sys; sys.modules['ray'] = None\n"

_IMPORT_ALL = """
import importlib, pkgutil, rag
names = [m.name for m in pkgutil.walk_packages(rag.__path__, 'rag.')]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))
assert sys.modules['ray'] is None and loaded == ['ray'], loaded
print(len(names))
"""

_MAIN = "from rag.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def _run(code: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _NO_RAY + code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_every_module_imports_without_ray() -> None:
    done = _run(_IMPORT_ALL)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 50


def test_help_works_without_ray() -> None:
    for command in ("index", "serve"):
        done = _run(_MAIN, command, "--help")
        assert done.returncode == 0, done.stderr
        assert "--ray" in done.stdout


def test_ray_flag_without_ray_names_the_extra(small_corpus: Path, tmp_path: Path) -> None:
    for args in (
        ("index", "--ray", "--corpus", str(small_corpus), "--index", str(tmp_path / "i")),
        ("serve", "--ray", "--replicas", "2", "--index", str(tmp_path / "i")),
    ):
        done = _run(_MAIN, *args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "pip install 'career-rag[ray]'" in lines[0]
    assert not (tmp_path / "i").exists()


def test_ray_address_setting_without_ray_names_the_extra(
    small_corpus: Path, tmp_path: Path
) -> None:
    import os

    env = {**os.environ, "RAG_RAY_ADDRESS": "auto"}
    done = subprocess.run(
        [sys.executable, "-c", _NO_RAY + _MAIN, "index", "--corpus", str(small_corpus),
         "--index", str(tmp_path / "i")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "career-rag[ray]" in done.stderr
