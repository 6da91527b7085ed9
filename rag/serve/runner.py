"""Run the app with uvicorn, in one process or several, with the HTTP limits of the settings."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from rag.config import Settings
from rag.runtime import configure_process
from rag.serve.app import create_app
from rag.serve.protocol import GuardedHttpToolsProtocol, HttpLimits


def settings_env(settings: Settings) -> dict[str, str]:
    """``RAG_*`` environment variables that reproduce ``settings`` in another process."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue  # unset (no config file): the default again, not the string "None"
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        env[f"RAG_{name.upper()}"] = str(value)
    return env


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the configured timeouts and limits (docs/security.md).

    uvicorn has a keep-alive timeout, a graceful-shutdown timeout and a backlog; the head
    deadline, head-size cap and connection cap it lacks come from rag.serve.protocol, and the
    body deadline from the app's BodyGuard. X-Forwarded-For is read by the app itself
    (``trusted_proxies``), so it behaves the same behind any server.
    """
    limits = HttpLimits(
        header_timeout=settings.header_timeout_s,
        max_header_bytes=settings.max_header_bytes,
        max_connections=settings.max_connections,
    )
    return {
        # A partial of a module-level class pickles, so worker processes get it too.
        "http": partial(GuardedHttpToolsProtocol, limits=limits),
        "timeout_keep_alive": settings.keepalive_timeout_s,
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
        "backlog": settings.backlog,
        "proxy_headers": False,
    }


def run_server(
    settings: Settings | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
) -> None:
    """Serve the API with uvicorn (blocking); several workers are separate processes."""
    configure_process()
    import uvicorn

    settings = settings or Settings()
    overrides = {"host": host, "port": port}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    options = uvicorn_options(settings)
    if workers > 1:
        # Each worker process builds its own app, so settings travel through the environment.
        os.environ.update(settings_env(settings))
        uvicorn.run(
            "rag.serve.app:app_factory",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            **options,
        )
    else:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, **options)
