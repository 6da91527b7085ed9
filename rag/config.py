"""One settings object for the library, the CLI and the server (environment prefix ``RAG_``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rag.ingest.profiles import DEFAULT_TEXT_PROFILE, PROFILES

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# A shorter admin token could be guessed: /admin is reachable by anyone who reaches the server.
MIN_ADMIN_TOKEN = 16
# "aaaaaaaaaaaaaaaa" or "1212121212121212" is long enough and still the first thing tried.
MIN_ADMIN_TOKEN_DISTINCT = 10


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as ``RAG_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=None, extra="ignore")

    config: Path | None = Field(
        None,
        description="a TOML file naming several collections, each public or private "
        "([docs/collections.md](docs/collections.md)); unset: one collection from the folders below",
    )
    corpus_dir: Path = Field(
        Path("corpus"),
        description="folder of documents (`.md`, `.mdx`, `.html`, `.pdf`, `.docx`, `.txt`), "
        "read recursively through links, hidden files skipped; uploads go in its `uploads/`",
    )
    index_dir: Path = Field(Path("index"), description="where the index is written and read")
    data_dir: Path = Field(
        Path("data"),
        description="where the server keeps its query log (`rag log` reads it), keys, and what "
        "`rag sync` fetched ([docs/sources.md](docs/sources.md))",
    )
    model: str = Field(
        DEFAULT_MODEL,
        description="the bundled model or a local sentence-transformers folder; an index "
        "refuses another",
    )
    query_backend: str = Field(
        "auto",
        description="`auto`: the index's ONNX export when it has one, else sentence-transformers; "
        "`onnx` or `torch` force one",
    )
    batch_size: int = Field(64, ge=1, description="texts the model embeds per batch in a build")
    text_profile: str = Field(
        DEFAULT_TEXT_PROFILE,
        description="how `.txt` files are read: `scraped-guide` (web pages flattened to text) "
        "or `plain`",
    )
    # Off by default: on a large corpus it costs minutes and GiBs for little gain
    # (docs/evaluation.md).
    adapt: bool = Field(
        False,
        description="`true` fine-tunes a copy of the model on the corpus at index time, reused "
        "while the corpus is unchanged",
    )
    k: int = Field(5, ge=1, le=50, description="passages returned when a request does not say")
    # What the corpus lacks and what it does cover follow it (rag.search.coverage).
    not_covered: str = Field(
        "The documents don't answer this question.",
        min_length=1,
        description="first sentence of the answer to a question the documents don't cover",
    )
    max_k: int = Field(50, ge=1, description="largest `k` a request may ask for")
    max_query_chars: int = Field(
        1000,
        ge=1,
        description="longest query (and user turn of a chat) accepted, counted as sent",
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="largest HTTP request body accepted"
    )
    # Read into memory whole, like every body (rag.serve.middleware), so this bounds memory too.
    max_upload_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        description="largest upload to `/documents` (all its files together); larger ones "
        "answer 413 and nothing is written",
    )
    sync_every: float | None = Field(
        None,
        description="how often `rag serve` syncs each collection's sources and re-indexes "
        "(`6h`, `30m`, `90s`; a collection's `sync_every` overrides it); unset: only `rag sync`",
    )
    # Queries that arrive while a batch encodes already form the next batch, so waiting on top
    # only idles the model (benchmarks/RESULTS.md).
    batch_wait_ms: float = Field(
        0.0, ge=0, description="how long the server waits to fill a batch of query encodes"
    )
    batch_max: int = Field(64, ge=1, description="most query encodes in one batch")
    host: str = Field("127.0.0.1", description="where `rag serve` listens")
    port: int = Field(8000, ge=1, le=65535, description="the port `rag serve` listens on")
    public_url: str = Field(
        "", description="base URL put in front of citation URLs (empty: relative URLs)"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "http://localhost:8000",
            "http://127.0.0.1:8000",
            "http://localhost:3000",
            "http://127.0.0.1:3000",
            "http://localhost:5173",
            "http://127.0.0.1:5173",
        ],
        description="origins allowed to call the API from a browser, comma-separated",
    )

    # HTTP limits, applied by rag.serve.runner (uvicorn options and rag.serve.protocol) and by
    # the BodyGuard middleware. A slow client holds a connection (and a file descriptor) only
    # this long; without them one client could hold thousands of half-sent requests open.
    header_timeout_s: float = Field(
        10.0, gt=0, description="seconds for a request line and headers to arrive"
    )
    body_timeout_s: float = Field(15.0, gt=0, description="seconds for a whole body to arrive")
    keepalive_timeout_s: float = Field(
        5.0, gt=0, description="seconds an idle keep-alive connection stays open"
    )
    graceful_timeout_s: float = Field(
        10.0, ge=0, description="seconds a shutdown waits for open requests"
    )
    max_connections: int = Field(
        1000, ge=1, description="open connections; more are answered 503 and closed"
    )
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="largest request line and headers together"
    )
    backlog: int = Field(
        2048, ge=1, description="connections the kernel queues before they are accepted"
    )
    # Abuse limits (rag.serve.limits), per client address and endpoint, in the `limits`
    # notation ("60/minute", "10/second;300/hour").
    rate_limit: str = Field(
        "60/minute",
        description="requests per client and endpoint on `/search`, `/ask`, `/chat`, "
        "`/v1/chat/completions`, `/feedback`, `/mcp` (POSTs); `off` disables",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="peers whose `X-Forwarded-For` names the client (addresses or networks; "
        "`*` trusts any)",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="`Host` headers answered (`*.example.com`, `*` for any); empty: `RAG_HOST`, "
        "localhost and `RAG_PUBLIC_URL`'s host",
    )
    max_comment_chars: int = Field(
        2000, ge=0, description="longest comment a `/feedback` rating may carry"
    )
    openai_model: str = Field(
        "career-rag",
        min_length=1,
        description="the model id the OpenAI-compatible API (`/v1`) lists the index as",
    )
    # Applied by the query log's writer thread.
    log_max_age_days: float = Field(
        90.0, ge=0, description="days a query-log row is kept (0 keeps them)"
    )
    log_max_rows: int = Field(
        100_000, ge=0, description="query-log rows kept, the oldest deleted first (0 keeps all)"
    )
    # So that one client cannot push everyone else's questions out of the log.
    log_max_rows_per_client_hour: int = Field(
        200,
        ge=0,
        description="queries one client address adds to the query log in any hour; past it they "
        "are answered but not logged (0: no cap)",
    )
    docs: bool = Field(True, description="serve Swagger UI at `/docs`, from a package, never a CDN")
    reload: bool = Field(
        True,
        description="a running server switches to an index rebuilt by `rag index` without a "
        "restart; `false` keeps the one it started with",
    )
    # Ray (the [ray] extra; rag.distributed).
    ray_address: str = Field(
        "",
        description="the Ray cluster of `--ray`: empty is off unless `--ray` is given, `local`, "
        "`auto` or an address",
    )
    ray_actors: int = Field(2, ge=1, description="embedding actors of a Ray build")
    ray_batch_size: int = Field(256, ge=1, description="texts per batch on each Ray actor")
    ray_cpus_per_actor: float = Field(1.0, gt=0, description="CPUs each Ray actor asks for")
    ray_gpus_per_actor: float = Field(0.0, ge=0, description="GPUs each Ray actor asks for")
    ray_min_replicas: int = Field(
        1, ge=1, description="fewest Serve replicas when `rag serve --ray` autoscales"
    )
    ray_max_replicas: int = Field(
        2, ge=1, description="most Serve replicas when `rag serve --ray` autoscales"
    )
    ray_cpus_per_replica: float = Field(
        1.0, gt=0, description="CPUs Ray reserves for each serving replica"
    )
    # Plain str, not SecretStr: several workers get the settings through the environment
    # (rag.serve.runner), where SecretStr would arrive masked. repr=False keeps it out of logs.
    admin_token: str = Field(
        "",
        repr=False,
        description=f"turns on the coverage report at `/admin`, behind this token "
        f"({MIN_ADMIN_TOKEN} characters or more, {MIN_ADMIN_TOKEN_DISTINCT} of them different); "
        "empty: `/admin` answers 404",
    )
    # In the `limits` notation, as rate_limit.
    admin_auth_limit: str = Field(
        "10/minute",
        description="failed authentications (wrong token or key, dead session) per client; "
        "past it, that client's authenticated requests answer 429",
    )

    @field_validator("sync_every", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("sync_every")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be a positive duration such as 6h, 30m or 90s")
        return value

    @field_validator("text_profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"unknown text profile; use one of {', '.join(sorted(PROFILES))}")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("trusted_proxies", "allowed_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("admin_token")
    @classmethod
    def _long_token(cls, value: str) -> str:
        value = value.strip()
        if value and len(value) < MIN_ADMIN_TOKEN:
            raise ValueError(
                f"must be at least {MIN_ADMIN_TOKEN} characters (or empty to turn /admin off)"
            )
        if value and len(set(value)) < MIN_ADMIN_TOKEN_DISTINCT:
            raise ValueError(
                f"must have at least {MIN_ADMIN_TOKEN_DISTINCT} different characters: a repeated "
                "pattern is guessed first (make one with `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`)"
            )
        return value

    @field_validator("rate_limit", "admin_auth_limit")
    @classmethod
    def _known_rate(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in ("off", "none", "0", ""):
            return "off"
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(
                'use "off" or a rate such as "60/minute" or "10/second;300/hour"'
            ) from exc
        return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float | None:
    """Seconds from ``6h``, ``30m``, ``90s``, ``1d`` or a number of seconds; None when empty."""
    text = text.strip().lower()
    if not text or text in ("off", "none"):
        return None
    number, unit = (text[:-1], text[-1]) if text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(
            f"{text!r} is not a duration: write a number and s, m, h or d (6h, 30m, 90s)"
        ) from None
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is not a finite duration")
    return seconds


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (None values ignored)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
