"""benchmarks/COLLECTIONS.md from the result of ``python -m benchmarks.collections``."""

from __future__ import annotations

from collections import Counter
from typing import Any

STATUSES = ("200", "401", "403", "404", "422")


def write_report(r: dict[str, Any]) -> str:
    """The page: the machine and load, then each part's table."""
    m, mixed = r["machine"], r["mixed"]
    loads = ", ".join(f"{x[0]:.2f}" for x in r["load"])
    lines = [
        "# Collections (issue 23)",
        "",
        "Written by `python -m benchmarks.collections` (raw numbers: `collections.json`). The",
        "machine is shared; read each figure with its load average.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Python "
        f"{m['python']}; onnxruntime {m['versions'].get('onnxruntime')}, uvicorn "
        f"{m['versions'].get('uvicorn')}.",
        f"- Run: {r['started']} to {r['finished']} (UTC); 1-minute load average {loads} (at the "
        "start, after the mixed requests, after the latency run, at the end).",
        "- Server: `python -m rag serve --config rag.toml` on 127.0.0.1, one worker, the real "
        "model (its ONNX export), indexes built by `python -m rag index --config rag.toml` "
        f"({r['index_s']} s for both), keys made by `python -m rag keys create`.",
        "- Settings for one client sending everything: `RAG_RATE_LIMIT=off`,",
        "  `RAG_LOG_MAX_ROWS_PER_CLIENT_HOUR=0` (feedback needs its queries logged) and",
        "  `RAG_ADMIN_AUTH_LIMIT=1000/minute`: the wrong keys of the mixed requests (counted below) go far",
        "  past the default budget of 10 a minute, which would turn what follows them into 429s.",
        "",
        "## The two collections",
        "",
        "Cut from the 37signals handbook (`/work/shared/corpora/handbook`): five files are in",
        "both, under the same names and titles and so the same document ids, each side holding",
        "alternate `##` sections; each side has one file of its own. Every paragraph ends with",
        "its side's sentinel word.",
        "",
        "| collection | access | sentinel | documents |",
        "| --- | --- | --- | --- |",
    ]
    sentinels = {"default": "Quillmere", "handbook": "Vorlanthe"}
    for name, ids in r["documents"].items():
        access = "public" if name == "default" else "private (a key scoped to it)"
        lines.append(f"| `{name}` | {access} | {sentinels[name]} | {', '.join(ids)} |")
    lines += _mixed(mixed)
    lines += _clients(r["clients"])
    lines += _latency(r["latency"])
    lines += _no_config(r["no_config"])
    return "\n".join(lines) + "\n"


def _mixed(mixed: dict[str, Any]) -> list[str]:
    statuses = mixed["statuses"]
    n = mixed["requests"]
    expected = Counter({k.split()[1]: v for k, v in statuses.items() if k.startswith("expected")})
    lines = [
        "",
        f"## {n} mixed requests",
        "",
        "Each request: a surface, a collection and a caller drawn at random (seeded): anonymous,",
        "the collection's own key, the other collection's key, or a wrong key. Searches, answers",
        "and chats carry no filter, the collection's own document, the other side's own",
        "document (`doc_id`) or its file (`source`); documents and the viewer ask for the",
        "collection's own document or the other side's; feedback rates a query logged by either",
        "collection. A leak is a response of one collection carrying the other's sentinel or",
        "its own document's id (when the request did not name it), or a passage that is not",
        "text of its own documents.",
        "",
        "- Callers: "
        + ", ".join(
            f"{k.removeprefix('caller ')} {v}"
            for k, v in sorted(statuses.items())
            if k.startswith("caller ")
        )
        + ".",
        f"- Leaks: **{len(mixed['leaks'])}**.",
        f"- Statuses other than expected: **{len(mixed['unexpected'])}**.",
        f"- 200s with passages: {statuses.get('200 with passages', 0)}, of which all passages "
        f"the right collection's: {statuses.get('200 with only its own passages', 0)}.",
        "",
        "| expected | requests | " + " | ".join(f"got {s}" for s in STATUSES) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in STATUSES) + " |",
    ]
    for want in sorted(expected):
        got = [str(statuses.get(f"{s} where {want} expected", 0)) for s in STATUSES]
        lines.append(f"| {want} | {expected[want]} | " + " | ".join(got) + " |")
    lines += ["", "| surface | requests | " + " | ".join(STATUSES) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in STATUSES) + " |"]  # fmt: skip
    for surface, counts in mixed["per_surface"].items():
        total = sum(counts.values())
        lines.append(f"| {surface} | {total} | " + " | ".join(str(counts.get(s, 0)) for s in
                     STATUSES) + " |")  # fmt: skip
    for title, items in (("Leaks", mixed["leaks"]), ("Unexpected", mixed["unexpected"])):
        if items:
            lines += ["", f"{title}:", "", *(f"- {item}" for item in items[:50])]
    return lines


def _clients(clients: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## The official clients",
        "",
        "`openai`: `models.list()` and `chat.completions.create(model=NAME)` for each collection,",
        "with no key of ours (`sk-none`, which the server ignores) and with each collection's key.",
        "",
        "| key | models listed | model `default` | model `handbook` |",
        "| --- | --- | --- | --- |",
    ]
    for row in clients["openai"]:
        lines.append(f"| {row['key']} | {', '.join(row['models'])} | {row['default']} | "
                     f"{row['handbook']} |")  # fmt: skip
    lines += ["", "`mcp`: the SDK's client on `/c/NAME/mcp`: `list_tools`, `search`, `ask`.", "",
              "| collection | key | result |", "| --- | --- | --- |"]  # fmt: skip
    for row in clients["mcp"]:
        lines.append(f"| `{row['collection']}` | {row['key']} | {row['result']} |")
    return lines


def _latency(latency: dict[str, Any]) -> list[str]:
    plain, prefixed = latency["/search"], latency["/c/default/search"]
    ratio = prefixed["p50_ms"] / plain["p50_ms"] if plain["p50_ms"] else float("nan")
    return [
        "",
        "## `/c/default/search` against `/search`",
        "",
        f"`POST /search` and `POST /c/default/search` on the same server, alternating, "
        f"{plain['n']} of each one at a time (after 10 of each to warm up), `k` 5, the same "
        "questions, one keep-alive httpx client.",
        "",
        "| path | p50 ms | p95 ms |",
        "| --- | ---: | ---: |",
        f"| `/search` | {plain['p50_ms']} | {plain['p95_ms']} |",
        f"| `/c/default/search` | {prefixed['p50_ms']} | {prefixed['p95_ms']} |",
        "",
        f"p50 ratio prefixed / unprefixed: {ratio:.2f}.",
    ]


def _no_config(found: dict[str, Any]) -> list[str]:
    return [
        "",
        "## Without a config file",
        "",
        "What `make run` does, with `RAG_INDEX_DIR` and `RAG_DATA_DIR` in a scratch folder and the",
        "repository's `corpus/`: `rag index --if-stale` (twice), then `rag serve`.",
        "",
        f"- First `rag index --if-stale`: {found['index']}",
        f"- Second: {found['index again']}",
        f"- `GET /ready`: {found['ready']}; `POST /search`: {found['search']}; `GET /`: "
        f"{found['page']}.",
        f"- `GET /collections`: {found['collections']}; `POST /c/default/search`: "
        f"{found['/c/default/search']}.",
        *(
            [f"- The whole test suite (`pytest tests`, no config file): {found['tests']}"]
            if "tests" in found
            else []
        ),
    ]
