"""``rag eval``: retrieval metrics per ranking mode on one or more question sets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rag import terminal
from rag.cli.common import check_k, index_options, json_option, load_retriever, settings
from rag.modes import MODES

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.evaluation import Question

# The order of the columns and the chart: the simplest rankings first, their fusion last.
MODES_FOR_EVAL = ("dense", "sentence", "bm25", "hybrid")


class ModeList(click.ParamType):
    """A comma-separated list of ranking modes."""

    name = "LIST"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        modes = tuple(m.strip() for m in str(value).split(",") if m.strip())
        unknown = [m for m in modes if m not in MODES]
        if not modes or unknown:
            self.fail(
                f"unknown mode {', '.join(unknown) or '(none)'}; choose from {', '.join(MODES)}",
                param,
                ctx,
            )
        return modes


def _png_only(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() != ".png":
        raise click.BadParameter("the chart is written as PNG; name a .png file", ctx, param)
    return value


@click.command("eval", help="score retrieval on a question set")
@click.argument(
    "questions",
    metavar="QUESTIONS.jsonl [MORE.jsonl ...]",
    nargs=-1,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@index_options
@json_option
@click.option("-k", "k", type=int, default=10, metavar="N", help="ranks scored (default 10)")
@click.option(
    "--modes",
    type=ModeList(),
    default=",".join(MODES_FOR_EVAL),
    metavar="LIST",
    help=f"comma-separated ranking modes (default {','.join(MODES_FOR_EVAL)})",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_png_only,
    metavar="FILE.png",
    help="write a bar chart of metrics",
)
def eval_command(
    questions: tuple[Path, ...],
    k: int,
    modes: tuple[str, ...],
    plot: Path | None,
    as_json: bool,
    index_dir: Path | None,
    corpus_dir: Path | None,
    model: str | None,
) -> int:
    """Score each ranking mode on a question set by the evidence rule."""
    from rag.evaluation import load_questions

    config = settings(index_dir=index_dir, corpus_dir=corpus_dir, model=model)
    k = check_k(k, config)
    sets = {path: load_questions(path) for path in questions}
    results = run_eval(config, sets, list(modes), k)
    if plot is not None:
        from rag.evaluation import plot_reports

        plot_reports({p.stem: reps for p, reps in results.items()}, plot)
    if as_json:
        terminal.print_json(
            {
                "k": k,
                "reports": [r.to_dict() for r in results[questions[0]]],
                "sets": [
                    {"path": str(p), "reports": [r.to_dict() for r in reps]}
                    for p, reps in results.items()
                ],
            }
        )
        return 0
    out = terminal.console()
    for path, reports in results.items():
        terminal.print_eval(out, path, len(sets[path]), k, reports)
    if plot is not None:
        out.print(f"chart written to {plot}")
    return 0


def run_eval(
    config: Settings, sets: dict[Path, list[Question]], modes: list[str], k: int
) -> dict[Path, list[Any]]:
    """The library call behind ``rag eval``: one report per mode for each question set."""
    from rag.evaluation import compare

    retriever = load_retriever(config)
    # compare() resolves conversation questions the way /chat does, so scores match the server.
    return {path: compare(retriever, qs, modes, k) for path, qs in sets.items()}
