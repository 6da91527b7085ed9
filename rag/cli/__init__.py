"""The ``rag`` command: parse the command line (click), call the library, format the result.

One module per group of commands; each keeps its calls into the library in small functions of
their own. Heavy modules (torch, sentence-transformers, FAISS) are imported inside them, never
at module level, so ``rag --help`` and argument errors answer at once.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from rag import __version__
from rag.analytics.querylog import LOW_SCORE
from rag.cli.analytics import log_command, report_command
from rag.cli.common import PROG
from rag.cli.documents import documents_command
from rag.cli.errors import EXIT_USAGE, run
from rag.cli.eval import MODES_FOR_EVAL, eval_command
from rag.cli.index import index_command
from rag.cli.keys import keys_group
from rag.cli.query import ask_command, search_command
from rag.cli.serve import mcp_command, serve_command
from rag.cli.sync import sync_command
from rag.modes import MODES

__all__ = ["EXIT_USAGE", "LOW_SCORE", "MODES", "MODES_FOR_EVAL", "PROG", "cli", "main"]


class _Commands(click.Group):
    """A group that lists its commands in the order they were added, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    PROG,
    cls=_Commands,
    help="Retrieval question answering over career guides, with exact citations.",
    epilog="Settings also come from RAG_* environment variables; flags override them.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name=PROG, message="%(prog)s %(version)s")
def cli() -> None:
    """The ``rag`` command group."""


for _command in (
    index_command,
    sync_command,
    search_command,
    ask_command,
    eval_command,
    serve_command,
    mcp_command,
    log_command,
    report_command,
    documents_command,
    keys_group,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rag`` command line and return its exit code."""
    from rag.runtime import configure_process

    configure_process()
    return run(cli, sys.argv[1:] if argv is None else argv)
