"""Two collections for the isolation and report tests: a public one (``careers``, or ``default``
so that the unprefixed routes serve it) and a private one, ``handbook``. Their guides share the
file name, title, headings, tag and so the document id; each also has a document, a tag and a
folder of its own. Every sentence carries its collection's mark, so any passage, answer or
document text says where it came from."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRIVATE = "handbook"
TOKEN = "an-admin-token-0123456789"
MARK = {"public": "careersonly", "private": "handbookonly"}
SHARED_ID = "engineering-guide"
# What only one side has: its mark, a document (id, title, source) and a tag.
OWN = {
    "public": {"mark": "careersonly", "id": "open-roles", "title": "Open Roles",
               "source": "roles/open-roles.md", "folder": "roles/", "tag": "jobs"},
    "private": {"mark": "handbookonly", "id": "salary-bands", "title": "Salary Bands",
                "source": "internal/salary-bands.md", "folder": "internal/", "tag": "hr"},
}  # fmt: skip
CORPORA = {
    "public": {
        "guide.md": "---\ntags: [eng, jobs]\n---\n# Engineering Guide\n\n## Pay\n\n"
        "Engineers joining us earn a competitive salary and a signing bonus, says the "
        "careersonly page.\n\n## Growth\n\nEngineers grow through mentoring circles, as the "
        "careersonly page explains.\n",
        "roles/open-roles.md": "# Open Roles\n\n## Engineering\n\nWe are hiring platform "
        "engineers who want good pay this spring, on the careersonly site.\n",
    },
    "private": {
        "guide.md": "---\ntags: [eng, hr]\n---\n# Engineering Guide\n\n## Pay\n\n"
        "Engineers are paid within pay band seven, per the handbookonly policy.\n\n## Growth"
        "\n\nEngineers are promoted by the calibration panel, per the handbookonly policy.\n",
        "internal/salary-bands.md": "# Salary Bands\n\n## Engineering\n\nPay band seven for "
        "engineers runs from level IC4 to IC5 in the handbookonly table.\n",
    },
}
CONFIG = """
[collections.{public}]
corpus = "public"
public = true

[collections.handbook]
corpus = "private"
public = false
"""
CALLERS = ("anonymous", "public_key", "private_key", "admin_key", "wrong_key")


@dataclass
class Deployment:
    """The two collections on disk, their indexes, the settings to serve them and the keys."""

    root: Path
    config: Path
    public: str
    settings: Any
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, str]:
        return (self.public, PRIVATE)

    def side(self, name: str) -> str:
        """ "public" or "private": which of the two ``name`` is."""
        return "private" if name == PRIVATE else "public"

    def headers(self, caller: str) -> dict[str, str]:
        key = self.keys.get(caller)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def served(self, target: str | None) -> str | None:
        """The collection a route under ``target``'s prefix serves (None: unprefixed)."""
        if target is None:
            return self.public if self.public == "default" else None
        return target

    def status(self, caller: str, target: str | None) -> int:
        """What a collection route answers ``caller`` before it looks at the request."""
        name = self.served(target)
        if name is None:
            return 404  # several collections, none called default
        if caller == "wrong_key":
            return 401
        if name == self.public or caller in ("private_key", "admin_key"):
            return 200
        return 401 if caller == "anonymous" else 403


def make_deployment(root: Path, embedder: Any, public: str = "careers", **settings: Any) -> Any:
    """Write both corpora and the config under ``root``, index them with ``embedder`` (None:
    leave that to ``rag index``), make one key per caller; the settings serve them in process
    (a TestClient's host, no rate limit)."""
    from rag.config import Settings
    from rag.index import build_index
    from rag.keys import KeyStore

    for side, files in CORPORA.items():
        for name, text in files.items():
            path = root / side / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    config = root / "rag.toml"
    config.write_text(CONFIG.format(public=public), encoding="utf-8")
    for name, side in ((public, "public"), (PRIVATE, "private")):
        if embedder is not None:
            build_index(root / side, root / "index" / name, embedder)
    options = {"allowed_hosts": ["testserver", "test"], "rate_limit": "off",
               "admin_token": TOKEN, "admin_auth_limit": "100000/minute", **settings}  # fmt: skip
    served = Settings(config=config, index_dir=root / "index", data_dir=root / "data", **options)
    store = KeyStore(served.data_dir)
    keys = {
        "public_key": store.create("site", [public])[1],
        "private_key": store.create("hr tools", [PRIVATE])[1],
        "admin_key": store.create("ops", admin=True)[1],
    }
    # Shaped like a key, with a secret that is not the key's: checked, and refused.
    keys["wrong_key"] = keys["private_key"][:-6] + "AAAAAA"
    return Deployment(root, config, public, served, keys)


def foreign(d: Deployment, served: str | None, text: str, asked: str = "") -> list[str]:
    """What ``text`` (a response to a request of ``served``) holds that only the other
    collection has; strings the request itself carried (``asked``) are not counted, since
    errors may quote them."""
    sides = ("public", "private") if served is None else ("private" if d.side(served) ==
                                                          "public" else "public",)  # fmt: skip
    found = []
    for side in sides:
        own = OWN[side]
        for word in (own["mark"], own["id"], own["title"], own["source"]):
            if word in text and word not in asked:
                found.append(word)
    return found


def wait_ready(client: Any, d: Deployment) -> None:
    """Until both collections' indexes are loaded."""
    deadline = time.monotonic() + 30
    for name in d.names:
        while client.get(f"/c/{name}/ready", headers=d.headers("admin_key")).status_code != 200:
            assert time.monotonic() < deadline, f"{name} never became ready"
            time.sleep(0.01)


def sse_data(text: str) -> list[Any]:
    """The JSON of each ``data:`` line of an event stream (``[DONE]`` left out)."""
    out = []
    for line in text.splitlines():
        if line.startswith("data: ") and line[6:] != "[DONE]":
            out.append(json.loads(line[6:]))
    return out


def passages(body: Any) -> list[dict[str, Any]]:
    """The passages a response body carries, under whichever key its protocol uses."""
    if isinstance(body, list):
        return [p for item in body for p in passages(item)]
    if not isinstance(body, dict):
        return []
    return list(body.get("results") or body.get("sources") or [])


def own_passages(
    d: Deployment, served: str, prefix: str, found: Iterable[dict[str, Any]]
) -> list[str]:
    """Problems with passages that should all be ``served``'s, their links under ``prefix``
    ("/c/NAME", or "" for the unprefixed routes): another's mark, a link elsewhere."""
    mark = MARK[d.side(served)]
    problems = []
    for hit in found:
        if mark not in hit["text"]:
            problems.append(f"passage without {mark!r}: {hit['text'][:80]!r}")
        url = hit["citation"]["url"]
        if f"{prefix}/view/" not in url or (not prefix and "/c/" in url):
            problems.append(f"citation outside {prefix or '/'}: {url}")
    return problems
