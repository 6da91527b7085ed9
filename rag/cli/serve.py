"""``rag serve`` (the HTTP API and pages, with uvicorn or Ray Serve) and ``rag mcp`` (stdio)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from rag.cli.common import (
    base_settings,
    catalog,
    chosen_collection,
    index_options,
    load_retriever,
    optional_import,
    ray_address,
    ray_option,
    settings,
)

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.search import Retriever


@click.command("serve", help="run the HTTP API and web pages")
@index_options
@click.option(
    "--host", envvar="RAG_HOST", help="address to listen on (RAG_HOST, default 127.0.0.1)"
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    envvar="RAG_PORT",
    help="port to listen on (RAG_PORT, default 8000)",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, metavar="N", help="server processes"
)
@ray_option(
    "serve with Ray Serve replicas (the [ray] extra): 'auto' joins a running cluster, "
    "no value starts a local one (RAG_RAY_ADDRESS)"
)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    metavar="N",
    help="with --ray: N replicas (default: autoscale within RAG_RAY_MIN/MAX_REPLICAS)",
)
def serve_command(
    index_dir: Path | None,
    corpus_dir: Path | None,
    model: str | None,
    host: str | None,
    port: int | None,
    workers: int,
    ray: str | None,
    replicas: int | None,
) -> int:
    """Run the HTTP server in the foreground: every collection of the config file, if any."""
    if chosen_collection() is not None:
        raise click.UsageError(
            "rag serve serves every collection of the config file: drop --collection"
        )
    config = base_settings(
        index_dir=index_dir, corpus_dir=corpus_dir, model=model, host=host, port=port
    )
    catalog(config)  # a bad config file fails here, in one line, before the server starts
    address = ray_address(ray, config)
    if replicas is not None and address is None:
        raise click.UsageError(
            "--replicas needs --ray (without Ray, --workers runs several processes)"
        )
    if address is not None and workers > 1:
        raise click.UsageError(
            "--workers and --ray cannot be combined: use --replicas N with --ray"
        )
    if address is not None:
        from rag.distributed.serve import run_serve

        run_serve(config, address, replicas)
        return 0
    run_server = optional_import("rag.serve.runner", "run_server", "the HTTP server")
    run_server(config, config.host, config.port, workers)
    return 0


@click.command("mcp", help="serve the index to MCP clients over stdin and stdout")
@index_options
def mcp_command(index_dir: Path | None, corpus_dir: Path | None, model: str | None) -> int:
    """Serve the index to one MCP client on stdin and stdout (stdout carries only the protocol)."""
    from rag.serve.mcp_stdio import log_to_stderr, stdout_to_stderr

    config = settings(index_dir=index_dir, corpus_dir=corpus_dir, model=model)
    log_to_stderr()
    with stdout_to_stderr():  # what loading prints must not reach the protocol's stream
        retriever = load_retriever(config)
    run_mcp(retriever, config)
    return 0


def run_mcp(retriever: Retriever, config: Settings) -> None:
    """The library call behind ``rag mcp``: serve until the client closes stdin."""
    from rag.serve.mcp_stdio import serve_stdio

    try:
        serve_stdio(retriever, config)
    finally:
        retriever.index.close()
