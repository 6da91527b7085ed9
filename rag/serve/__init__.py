"""Serve: the HTTP API, the chat page, the source viewer and the embeddable widget."""

from rag.serve.app import app_factory, create_app
from rag.serve.runner import run_server

__all__ = ["app_factory", "create_app", "run_server"]
