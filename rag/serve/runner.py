"""Run the app with uvicorn, in one process or several."""

from __future__ import annotations

import os

from rag.config import Settings
from rag.serve.app import create_app


def settings_env(settings: Settings) -> dict[str, str]:
    """``RAG_*`` environment variables that reproduce ``settings`` in another process."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        env[f"RAG_{name.upper()}"] = str(value)
    return env


def run_server(
    settings: Settings | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
) -> None:
    """Serve the API with uvicorn (blocking); several workers are separate processes."""
    import uvicorn

    settings = settings or Settings()
    overrides = {"host": host, "port": port}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if workers > 1:
        # Each worker process builds its own app, so settings travel through the environment.
        os.environ.update(settings_env(settings))
        uvicorn.run(
            "rag.serve.app:app_factory",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
        )
    else:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
