"""One settings object for the library, the CLI and the server (environment prefix ``RAG_``)."""

from __future__ import annotations

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

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    data_dir: Path = Path("data")
    model: str = DEFAULT_MODEL
    # "auto" uses the ONNX export for queries when one is in the index, else sentence-transformers.
    query_backend: str = "auto"
    batch_size: int = Field(64, ge=1)
    # How plain-text files are read (rag.ingest.profiles): "scraped-guide" or "plain".
    text_profile: str = DEFAULT_TEXT_PROFILE
    # Fine-tune the model on the corpus when building the index (rag.models.adaptation). Off by
    # default: it costs minutes and GiBs on a large corpus for little gain (docs/evaluation.md).
    adapt: bool = False
    k: int = Field(5, ge=1, le=50)
    # The first sentence of an answer to a question the corpus does not cover; what the corpus
    # lacks and what it does cover follow it (rag.search.coverage).
    not_covered: str = Field("The documents don't answer this question.", min_length=1)
    max_k: int = Field(50, ge=1)
    max_query_chars: int = Field(1000, ge=1)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Micro-batching of concurrent query encodes in the server.
    # 0: queries that arrive while a batch encodes already form the next batch; waiting on top
    # only idles the model (benchmarks/RESULTS.md: 16 clients 287-304 -> 294-326 req/s).
    batch_wait_ms: float = Field(0.0, ge=0)
    batch_max: int = Field(64, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_url: str = ""
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "http://localhost:8000",
            "http://127.0.0.1:8000",
            "http://localhost:3000",
            "http://127.0.0.1:3000",
            "http://localhost:5173",
            "http://127.0.0.1:5173",
        ]
    )

    # HTTP limits, applied by rag.serve.runner (uvicorn options and rag.serve.protocol) and by
    # the BodyGuard middleware. A slow client holds a connection (and a file descriptor) only
    # this long; without them one client could hold thousands of half-sent requests open.
    header_timeout_s: float = Field(10.0, gt=0)  # request line and headers must arrive in this
    body_timeout_s: float = Field(15.0, gt=0)  # the whole body must arrive in this
    keepalive_timeout_s: float = Field(5.0, gt=0)  # an idle keep-alive connection is closed after
    graceful_timeout_s: float = Field(10.0, ge=0)  # shutdown waits this long for open requests
    max_connections: int = Field(1000, ge=1)  # more are answered 503 and closed at once
    max_header_bytes: int = Field(16 * 1024, ge=1024)  # request line and headers together
    backlog: int = Field(2048, ge=1)  # connections the kernel queues before they are accepted
    # Abuse limits (rag.serve.limits). Per client address and endpoint on /search, /ask, /chat,
    # /v1/chat/completions, /feedback and /mcp, in the `limits` notation ("60/minute",
    # "10/second;300/hour"); "off" disables.
    rate_limit: str = "60/minute"
    # Peers whose X-Forwarded-For names the client (addresses or networks; "*" trusts any).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"]
    )
    # Host headers answered; empty: the configured host, localhost, 127.0.0.1, ::1 and the
    # public URL's host. "*" answers any (DNS rebinding protection off).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_comment_chars: int = Field(2000, ge=0)
    # The model id the OpenAI-compatible API (/v1) lists the index as and answers with.
    openai_model: str = Field("career-rag", min_length=1)
    # Query-log retention, applied by its writer thread: rows older than this many days, and the
    # oldest beyond this many rows, are deleted (0 keeps them).
    log_max_age_days: float = Field(90.0, ge=0)
    log_max_rows: int = Field(100_000, ge=0)
    # Queries one client address may add to the log in any hour (0: no cap); past it they are
    # answered but not logged, so one client cannot push everyone's questions out of the log.
    log_max_rows_per_client_hour: int = Field(200, ge=0)
    # Interactive API docs at /docs, from assets shipped in a package (never a CDN).
    docs: bool = True
    # A running server loads an index swapped into index_dir (a `rag index` while it serves)
    # and switches to it without a restart (rag.serve.reload); off: it keeps the index it
    # started with.
    reload: bool = True
    # Ray (the [ray] extra; rag.distributed). The cluster `rag index --ray` and `rag serve --ray`
    # use: "" is off unless --ray is given, "local" starts one here, "auto" joins a running one,
    # anything else is an address (ray://host:10001).
    ray_address: str = ""
    # The build's embedding actors, each loading the model once, and what each asks for.
    ray_actors: int = Field(2, ge=1)
    ray_batch_size: int = Field(256, ge=1)
    ray_cpus_per_actor: float = Field(1.0, gt=0)
    ray_gpus_per_actor: float = Field(0.0, ge=0)
    # Serve's autoscaling bounds when `rag serve --ray` is given no --replicas.
    ray_min_replicas: int = Field(1, ge=1)
    ray_max_replicas: int = Field(2, ge=1)
    # CPUs Ray reserves for each serving replica (a replica uses about one under load).
    ray_cpus_per_replica: float = Field(1.0, gt=0)
    # Plain str, not SecretStr: several workers get the settings through the environment
    # (rag.serve.runner), where SecretStr would arrive masked. repr=False keeps it out of logs.
    admin_token: str = Field(
        "",
        repr=False,
        description=(
            "Token for the coverage report at /admin (sent as `Authorization: Bearer TOKEN`, or "
            "typed into the /admin/login form). Empty: /admin is off and answers 404. At least "
            f"{MIN_ADMIN_TOKEN} characters, {MIN_ADMIN_TOKEN_DISTINCT} of them different."
        ),
    )

    # Failed admin authentications (a wrong Bearer token, session cookie or sign-in) a client
    # may make, in the `limits` notation; past it every /admin request of that client is 429.
    admin_auth_limit: str = "10/minute"

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


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (None values ignored)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
