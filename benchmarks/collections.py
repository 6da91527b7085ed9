"""Collections (issue 23), measured against a real ``python -m rag serve --config FILE``.

``python -m benchmarks.collections`` writes ``benchmarks/COLLECTIONS.md`` and
``benchmarks/collections.json``:

1. Two collections cut from the 37signals handbook: ``default`` (public) and ``handbook``
   (private). Five files are in both under the same names and titles (so the same document
   ids), each side holding alternate sections; one more file is each side's own. Every
   paragraph ends with its side's sentinel word. Indexed with ``python -m rag index --config``,
   keys made with ``python -m rag keys create``, served by ``python -m rag serve --config``
   on 127.0.0.1 with the real model.
2. Mixed requests on every surface (search, ask, chat and its stream, documents, a document,
   the viewer, feedback, /v1 completions and their stream, MCP tool calls), each from a random
   caller (anonymous, a key of the collection, a key of the other one, a wrong key) to a random
   collection, some with filters naming the other side's own document or folder: the leaks (a
   response of one collection carrying the other's sentinel, or a passage that is not its own
   text), the statuses against the expected ones, and the 200s whose passages are all the
   right collection's.
3. The official ``openai`` client (models, a completion per collection, with and without a key)
   and the official ``mcp`` client on ``/c/NAME/mcp`` (tools, search, ask).
4. ``/c/default/search`` against ``/search`` on the same server, interleaved, one at a time.
5. No config file: ``rag index --if-stale`` then ``rag serve`` (what ``make run`` does), and
   /ready, /search, / and /collections; with ``--tests``, the whole test suite too (no
   ``RAG_CONFIG`` in its environment), its summary line recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import PYTHON, ROOT, free_port, loadavg, machine, now, pct, wait_ready

HANDBOOK = Path("/work/shared/corpora/handbook")
SHARED = ["benefits-and-perks.md", "how-we-work.md", "our-internal-systems.md",
          "stateFMLA.md", "making-a-career.md"]  # fmt: skip
OWN_FILE = {"default": "our-rituals.md", "handbook": "moonlighting.md"}
SENTINEL = {"default": "Quillmere", "handbook": "Vorlanthe"}
OTHER = {"default": "handbook", "handbook": "default"}
QUESTIONS = [
    "How much does the company pay for medical insurance?", "What is the vacation policy?",
    "How do promotions work?", "What tools do we use internally?", "How do we handle on-call?",
    "How long is parental leave?", "Can I work on side projects?", "How are meetings run?",
    "What happens at the yearly meetup?", "How is work planned in cycles?",
]  # fmt: skip
CONFIG = '[collections.default]\ncorpus = "default"\npublic = true\n\n' \
         '[collections.handbook]\ncorpus = "handbook"\npublic = false\n'  # fmt: skip
# Every request comes from this one client: no rate limit, no cap on its share of the log, and
# a failed-key budget above the wrong keys sent (the default is 10 a minute).
ENV = {"RAG_RATE_LIMIT": "off", "RAG_LOG_MAX_ROWS_PER_CLIENT_HOUR": "0",
       "RAG_ADMIN_AUTH_LIMIT": "1000/minute", "HF_HUB_OFFLINE": "1",
       "PYTHONPATH": str(ROOT)}  # fmt: skip


def marked(text: str, word: str) -> str:
    """Every paragraph (headings aside) ends with ``word``."""
    blocks = text.strip().split("\n\n")
    return "\n\n".join(b if b.lstrip().startswith("#") else f"{b} ({word})" for b in blocks) + "\n"


def split_sections(text: str) -> tuple[str, list[str]]:
    """The part before the first ``## `` heading, and each ``## `` section."""
    parts = re.split(r"(?m)^(?=## )", text)
    return parts[0], parts[1:]


def make_corpora(work: Path) -> Path:
    """The two collections' folders and the config file; returns the config's path."""
    for name in SENTINEL:
        (work / name).mkdir(parents=True)
    for file in SHARED:
        head, sections = split_sections((HANDBOOK / file).read_text(encoding="utf-8"))
        for i, name in enumerate(SENTINEL):
            mine = "".join(sections[i::2])
            (work / name / file).write_text(marked(head + mine, SENTINEL[name]), encoding="utf-8")
    for name, file in OWN_FILE.items():
        text = (HANDBOOK / file).read_text(encoding="utf-8")
        (work / name / file).write_text(marked(text, SENTINEL[name]), encoding="utf-8")
    config = work / "rag.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return config


def rag(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m rag ARGS``; exits with its stderr when it fails."""
    done = subprocess.run([PYTHON, "-m", "rag", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"rag {' '.join(args)} failed: {done.stderr}")
    return done


def serve(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [PYTHON, "-m", "rag", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


class Run:
    """One server over the two collections: the callers' keys and each collection's texts."""

    def __init__(self, url: str, keys: dict[str, str]) -> None:
        self.url, self.keys = url, keys
        self.http = httpx.Client(base_url=url, timeout=120)
        self.texts: dict[str, dict[str, str]] = {}
        admin = self.auth("admin")
        for name in SENTINEL:
            listed = self.http.get(f"/c/{name}/documents", headers=admin).json()["documents"]
            self.texts[name] = {
                d["id"]: self.http.get(f"/c/{name}/documents/{d['id']}", headers=admin).json()[
                    "text"
                ]
                for d in listed
            }
        self.query_ids: dict[str, list[str]] = {name: [] for name in SENTINEL}

    def auth(self, who: str) -> dict[str, str]:
        key = self.keys.get(who)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def caller_headers(self, caller: str, name: str) -> dict[str, str]:
        """A caller of collection ``name``: anonymous, its own key, the other's, a wrong key."""
        if caller == "anonymous":
            return {}
        if caller == "bad key":
            return {"Authorization": f"Bearer {self.keys[name][:-6]}AAAAAA"}
        return self.auth(name if caller == "right key" else OTHER[name])

    def access(self, caller: str, name: str) -> int:
        if caller == "bad key":
            return 401
        if name == "default" or caller == "right key":
            return 200
        return 401 if caller == "anonymous" else 403

    def own(self, name: str, text: str) -> bool:
        return any(text in doc for doc in self.texts[name].values())


def request(run: Run, rng: random.Random, surface: str, name: str, headers: dict[str, str]) -> Any:
    """One request of ``surface`` to collection ``name``: (response, the status expected once
    access is granted)."""
    p, q = f"/c/{name}", rng.choice(QUESTIONS)
    other_id = OWN_FILE[OTHER[name]].removesuffix(".md")
    own_id = rng.choice(sorted(run.texts[name]))
    filters = rng.choice([None, None, {"doc_id": own_id}, {"doc_id": other_id},
                          {"source": OWN_FILE[OTHER[name]]}])  # fmt: skip
    want = 422 if filters and filters.get("doc_id") == other_id else 200
    body: dict[str, Any] = {"filters": filters} if filters else {}
    post = run.http.post
    if surface in ("search", "ask"):
        return post(f"{p}/{surface}", json={"query": q, **body}, headers=headers), want
    if surface in ("chat", "chat stream"):
        chat = {"messages": [{"role": "user", "content": q}], "stream": surface == "chat stream"}
        return post(f"{p}/chat", json={**chat, **body}, headers=headers), want
    if surface == "documents":
        return run.http.get(f"{p}/documents", headers=headers), 200
    if surface in ("document", "viewer"):
        doc = rng.choice([own_id, other_id])
        path = "documents" if surface == "document" else "view"
        return run.http.get(f"{p}/{path}/{doc}", headers=headers), 200 if doc == own_id else 404
    if surface == "feedback":
        owner = rng.choice(list(SENTINEL))
        ids = run.query_ids[owner] or ["0" * 32]
        rating = {"query_id": rng.choice(ids), "rating": rng.choice(["up", "down"])}
        return post(f"{p}/feedback", json=rating, headers=headers), 200 if owner == name else 404
    if surface in ("v1", "v1 stream"):
        ask = {"model": name, "messages": [{"role": "user", "content": q}],
               "stream": surface == "v1 stream"}  # fmt: skip
        return post("/v1/chat/completions", json=ask, headers=headers), 200
    tool, args = rng.choice([("search", {"query": q}), ("ask", {"question": q}),
                             ("list_documents", {}), ("read_document", {"doc_id": own_id}),
                             ("read_document", {"doc_id": other_id})])  # fmt: skip
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": tool, "arguments": args}}  # fmt: skip
    accept = {"Accept": "application/json, text/event-stream"}
    return post(f"{p}/mcp", json=rpc, headers={**headers, **accept}), 200


SURFACES = ["search", "ask", "chat", "chat stream", "documents", "document", "viewer",
            "feedback", "v1", "v1 stream", "mcp"]  # fmt: skip


def passages_of(text: str) -> list[str]:
    """Every passage text in a response body, whatever its shape (JSON, SSE, JSON-RPC)."""
    found = []
    for line in [text, *(ln[6:] for ln in text.splitlines() if ln.startswith("data: "))]:
        try:
            body = json.loads(line)
        except ValueError:
            continue
        stack = [body]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if isinstance(item.get("text"), str) and "citation" in item:
                    found.append(item["text"])
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return found


def mixed(run: Run, n: int, seed: int) -> dict[str, Any]:
    """``n`` requests, random surface, collection and caller; what came back, counted."""
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    per_surface: dict[str, Counter[str]] = {s: Counter() for s in SURFACES}
    unexpected, leaks = [], []
    for i in range(n):
        surface, name = rng.choice(SURFACES), rng.choice(list(SENTINEL))
        caller = rng.choice(["anonymous", "right key", "other's key", "bad key"])
        response, want = request(run, rng, surface, name, run.caller_headers(caller, name))
        access = run.access(caller, name)
        expected = access if access != 200 else want
        status, text = response.status_code, response.text
        counts[str(status)] += 1
        per_surface[surface][str(status)] += 1
        if status != expected:
            unexpected.append(f"#{i} {surface} {name} {caller}: {status}, expected {expected}")
        hits = passages_of(text)
        alien = [h for h in hits if not run.own(name, h)]
        # The other side's own document, unless the request named it (errors quote it).
        other_id = OWN_FILE[OTHER[name]].removesuffix(".md")
        sent = str(response.request.url) + response.request.content.decode()
        named = other_id in text and other_id not in sent
        if SENTINEL[OTHER[name]] in text or alien or named:
            why = alien[:1] or (SENTINEL[OTHER[name]] if not named else other_id)
            leaks.append(f"#{i} {surface} {name} {caller}: {why}")
        if status == 200 and hits:
            counts["200 with passages"] += 1
            counts["200 with only its own passages"] += not alien
        if status == 200 and surface in ("search", "ask", "chat") and '"query_id"' in text:
            run.query_ids[name].append(response.json()["query_id"])
        counts[f"expected {expected}"] += 1
        counts[f"caller {caller}"] += 1
        counts[f"{status} where {expected} expected"] += 1
    return {"requests": n, "statuses": dict(counts), "per_surface": {s: dict(c) for s, c in
            per_surface.items()}, "unexpected": unexpected, "leaks": leaks}  # fmt: skip


def official_clients(run: Run) -> dict[str, Any]:
    """OpenAI's client: the models and a completion per collection, with and without a key;
    MCP's client on each collection's endpoint: the tools, a search and an answer."""
    import openai

    out: dict[str, Any] = {"openai": [], "mcp": []}
    for who in ("anonymous", "default", "handbook"):
        api = openai.OpenAI(base_url=f"{run.url}/v1", api_key=run.keys.get(who, "sk-none"),
                            max_retries=0)  # fmt: skip
        row: dict[str, Any] = {"key": who, "models": sorted(m.id for m in api.models.list())}
        for name in SENTINEL:
            messages = [{"role": "user", "content": QUESTIONS[0]}]
            try:
                reply = api.chat.completions.create(model=name, messages=messages)
                sources = [s["text"] for s in reply.model_extra["sources"]]
                mine = all(run.own(name, s) for s in sources)
                row[name] = f"200, {len(sources)} sources, {'all' if mine else 'NOT all'} its own"
            except openai.APIStatusError as exc:
                row[name] = str(exc.status_code)
        out["openai"].append(row)
    for name in SENTINEL:
        for who in ("anonymous", name):
            out["mcp"].append({"collection": name, "key": who, **asyncio.run(mcp(run, name, who))})
    return out


async def mcp(run: Run, name: str, who: str) -> dict[str, Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    try:
        async with httpx2.AsyncClient(headers=run.auth(who), timeout=120) as http:
            url = f"{run.url}/c/{name}/mcp"
            async with Client(streamable_http_client(url, http_client=http)) as client:
                tools = (await client.list_tools()).tools
                found = await client.call_tool("search", {"query": QUESTIONS[1]})
                answer = await client.call_tool("ask", {"question": QUESTIONS[1]})
    except Exception:  # refused: the client raises; the status is the server's answer
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        accept = {"Accept": "application/json, text/event-stream", **run.auth(who)}
        refused = run.http.post(f"/c/{name}/mcp", json=rpc, headers=accept)
        return {"result": f"refused: {refused.status_code} {refused.json()['detail']!r}"}
    hits = [h["text"] for h in found.structured_content["results"]]
    said = json.dumps(answer.structured_content)
    described = " ".join(t.description or "" for t in tools)
    clean = SENTINEL[OTHER[name]] not in said + described + json.dumps(hits)
    return {"result": f"{len(tools)} tools, search {len(hits)} passages "
            f"({'all' if all(run.own(name, h) for h in hits) else 'NOT all'} its own), "
            f"ask answered={answer.structured_content['answered']}, "
            f"{'no' if clean else 'SOME'} text of the other"}  # fmt: skip


def latency(run: Run, n: int) -> dict[str, Any]:
    """/search and /c/default/search, alternating, ``n`` each, one at a time."""
    times: dict[str, list[float]] = {"/search": [], "/c/default/search": []}
    for i in range(n + 10):
        for path in list(times) if i % 2 == 0 else list(reversed(times)):
            t0 = time.perf_counter()
            response = run.http.post(path, json={"query": QUESTIONS[i % len(QUESTIONS)], "k": 5})
            elapsed = time.perf_counter() - t0
            assert response.status_code == 200, response.text
            if i >= 10:  # the first ten of each warm up
                times[path].append(elapsed * 1000)
    return {p: {"p50_ms": round(pct(t, 50), 2), "p95_ms": round(pct(t, 95), 2), "n": len(t)}
            for p, t in times.items()}  # fmt: skip


def no_config(work: Path) -> dict[str, Any]:
    """What ``make run`` does, on a copy of the repository's corpus: index if stale, serve."""
    env = {**ENV, "RAG_CORPUS_DIR": str(ROOT / "corpus"), "RAG_INDEX_DIR": str(work / "index"),
           "RAG_DATA_DIR": str(work / "data")}  # fmt: skip
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAG_")}, **env}
    first, again = (_said(rag(["index", "--if-stale"], env)) for _ in range(2))
    port = free_port()
    proc = serve(env, work / "serve.log", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/ready")
        ready = httpx.get(f"{url}/ready").json()
        found = httpx.post(f"{url}/search", json={"query": "what skills does an ML fraud "
                           "engineer need", "k": 3}).json()  # fmt: skip
        page = httpx.get(f"{url}/")
        listed = httpx.get(f"{url}/collections").json()["collections"]
        prefixed = httpx.post(f"{url}/c/default/search", json={"query": "fraud", "k": 1})
        return {
            "index": first, "index again": again, "ready": ready["status"],
            "search": f"{len(found['results'])} results, first "
                      f"{found['results'][0]['citation']['title']!r}",
            "page": f"{page.status_code} {page.headers['content-type']}",
            "collections": [c["name"] for c in listed],
            "/c/default/search": prefixed.status_code,
        }  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)


def test_suite() -> str:
    """``pytest tests`` with no RAG_* setting but the shared test index: its summary line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    # The real index the tests share (built there on first use, as `make test` does).
    env["RAG_TEST_INDEX"] = os.environ.get("RAG_TEST_INDEX") or str(ROOT / ".cache" / "test-index")
    t0 = time.perf_counter()
    done = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True,
                          text=True)  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1]
    return f"{summary} (exit {done.returncode}, {time.perf_counter() - t0:.0f} s wall)"


def _said(done: subprocess.CompletedProcess[str]) -> str:
    """What a build said it did: its "Indexed ..." line, else its last line."""
    lines = (done.stdout + done.stderr).strip().splitlines()
    return next((line for line in lines if line.startswith("Indexed")), lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-bench/collections"))
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--tests", action="store_true", help="also run the whole test suite")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    result: dict[str, Any] = {"machine": machine(), "started": now(), "load": [loadavg()]}
    config = make_corpora(args.work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env = {**env, **ENV, "RAG_CONFIG": str(config), "RAG_INDEX_DIR": str(args.work / "index"),
           "RAG_DATA_DIR": str(args.work / "data")}  # fmt: skip
    t0 = time.perf_counter()
    rag(["index"], env)
    result["index_s"] = round(time.perf_counter() - t0, 1)
    keys = {name: json.loads(rag(["keys", "create", "--collection", name, "--name", name,
                                  "--json"], env).stdout)["key"] for name in SENTINEL}  # fmt: skip
    keys["admin"] = json.loads(rag(["keys", "create", "--admin", "--name", "ops", "--json"],
                                   env).stdout)["key"]  # fmt: skip
    port = free_port()
    proc = serve(env, args.work / "serve.log", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/ready")
        for _ in range(600):
            ready = httpx.get(f"{url}/c/handbook/ready", headers={"Authorization":
                              f"Bearer {keys['admin']}"})  # fmt: skip
            if ready.status_code == 200:
                break
            time.sleep(0.2)
        run = Run(url, keys)
        result["documents"] = {n: sorted(t) for n, t in run.texts.items()}
        result["mixed"] = mixed(run, args.requests, args.seed)
        result["load"].append(loadavg())
        result["clients"] = official_clients(run)
        result["latency"] = latency(run, args.latency)
        result["load"].append(loadavg())
    finally:
        proc.terminate()
        proc.wait(30)
    result["no_config"] = no_config(args.work / "no-config")
    result["load"].append(loadavg())
    if args.tests:
        result["no_config"]["tests"] = test_suite()
    result["finished"] = now()
    out = ROOT / "benchmarks"
    (out / "collections.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    from benchmarks.collections_report import write_report

    (out / "COLLECTIONS.md").write_text(write_report(result), encoding="utf-8")
    print(f"wrote {out / 'COLLECTIONS.md'}")


if __name__ == "__main__":
    main()
