"""What the commands share: the index options, ``--json``, value types, settings, the index
loader and the warning line.

Nothing here imports torch, FAISS or the web app: ``rag --help`` and a bad argument answer at
once. The library is imported inside the functions that need it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.search import Retriever

PROG = "rag"

F = TypeVar("F", bound=Callable[..., Any])

# Options that mirror a setting read it from the same RAG_* variable, so an error in either
# names the variable, and the flag wins over it.
index_option = click.option(
    "--index",
    "index_dir",
    type=click.Path(path_type=Path),
    envvar="RAG_INDEX_DIR",
    metavar="DIR",
    help="index directory (RAG_INDEX_DIR)",
)
corpus_option = click.option(
    "--corpus",
    "corpus_dir",
    type=click.Path(path_type=Path),
    envvar="RAG_CORPUS_DIR",
    metavar="DIR",
    help="corpus folder (RAG_CORPUS_DIR)",
)
model_option = click.option(
    "--model", envvar="RAG_MODEL", metavar="NAME", help="embedding model (RAG_MODEL)"
)
data_option = click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    envvar="RAG_DATA_DIR",
    metavar="DIR",
    help="data directory (RAG_DATA_DIR)",
)
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.meta[key] = value
        return value

    return store


# Read by ``settings()`` rather than passed along: every command that reads an index takes them.
config_option = click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="RAG_CONFIG",
    metavar="FILE",
    expose_value=False,
    callback=_remember("rag.config"),
    help="a TOML file naming several collections (RAG_CONFIG; docs/collections.md)",
)
collection_option = click.option(
    "--collection",
    metavar="NAME",
    expose_value=False,
    callback=_remember("rag.collection"),
    help="which collection of the config file (default: the one called default, or the only one)",
)


def collection_options(f: F) -> F:
    """``--config`` and ``--collection``."""
    return config_option(collection_option(f))


def index_options(f: F) -> F:
    """``--index``, ``--corpus``, ``--model``, ``--config`` and ``--collection``: every command
    that reads an index takes them."""
    return index_option(corpus_option(model_option(collection_options(f))))


def ray_option(help_text: str) -> Callable[[F], F]:
    """``--ray [ADDRESS]``: with no value, the address comes from RAG_RAY_ADDRESS or is local."""
    return click.option(
        "--ray", is_flag=False, flag_value="", default=None, metavar="ADDRESS", help=help_text
    )


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which no threshold or wait can be."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = super().convert(value, param, ctx)
        except click.BadParameter:
            number = math.nan
        if not math.isfinite(number):
            self.fail(f"expected a number {self._bounds()}, got {value!r}", param, ctx)
        return number

    def _bounds(self) -> str:
        low = f">= {self.min:g}" if self.min is not None else ""
        high = f"<= {self.max:g}" if self.max is not None else ""
        return " and ".join(b for b in (low, high) if b) or "that is finite"


def settings(**overrides: object) -> Settings:
    """Settings from the environment, overridden by whichever flags were given; with a config
    file, those of the collection ``--collection`` names (rag.collections)."""
    return collection_settings(base_settings(**overrides), chosen_collection())


def base_settings(**overrides: object) -> Settings:
    """The server-wide settings: the environment, the flags and ``--config``, before any
    collection's own folders and overrides."""
    from rag.config import get_settings

    return get_settings(config=_meta().get("rag.config"), **overrides)


def collection_settings(base: Settings, name: str | None) -> Settings:
    """The settings of collection ``name`` (None: the default one) of ``base``'s config file;
    ``base`` itself without a config file, whose only collection is "default"."""
    from rag.collections import DEFAULT, Catalog

    if base.config is None:
        if name not in (None, DEFAULT):
            raise click.UsageError(
                "--collection needs a config file (--config FILE or RAG_CONFIG); without one the "
                f"only collection is {DEFAULT!r}"
            )
        return base
    every = Catalog.from_settings(base)
    if name is None and every.default is None:
        # The operator reads the config file anyway: name its collections.
        raise click.UsageError(
            f"--collection: {base.config} names several collections and none is called "
            f"{DEFAULT!r}: choose one of {', '.join(every.collections)}"
        )
    return every.get(name).settings


def catalog(base: Settings | None = None) -> Any:
    """The collections of ``base`` (the command line's settings by default): one, "default",
    without a config file."""
    from rag.collections import Catalog

    return Catalog.from_settings(base or base_settings())


def chosen_collection() -> str | None:
    """The name ``--collection`` gave, if any."""
    return _meta().get("rag.collection")


def _meta() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return ctx.meta if ctx is not None else {}


def check_k(k: int | None, settings: Settings) -> int:
    """k, defaulted from the settings and checked before anything slow is loaded."""
    k = settings.k if k is None else k
    # The bound is a setting (RAG_MAX_K), so it cannot be a fixed IntRange.
    if not 1 <= k <= settings.max_k:
        raise click.BadParameter(f"must be from 1 to {settings.max_k}, not {k}", param_hint="-k")
    return k


def ray_address(flag: str | None, settings: Settings) -> str | None:
    """The Ray cluster to use ("local", "auto" or an address), or None for no Ray."""
    # Without Ray installed this fails with the install hint, before anything slow.
    if flag is None and not settings.ray_address:
        return None
    from rag.distributed.cluster import RayMissing, require_ray

    try:
        require_ray()
    except RayMissing as exc:
        raise click.UsageError(str(exc)) from None
    return flag or settings.ray_address or "local"


def load_retriever(settings: Settings) -> Retriever:
    """Load the index and model, warning on stderr when the corpus changed since the build."""
    from rag.search.retriever import Retriever

    retriever = Retriever.from_settings(settings)
    corpus = Path(settings.corpus_dir)
    # Without the corpus at hand (an index copied elsewhere) freshness cannot be judged.
    if corpus.is_dir():
        stale = retriever.index.stale_sources(corpus)
        if stale:
            shown = ", ".join(stale[:3]) + (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
            warn(
                f"the index is stale: {len(stale)} corpus file(s) changed since it was built "
                f"({shown}); run `rag index` to rebuild it"
            )
    return retriever


def optional_import(module: str, name: str, what: str) -> Callable[..., Any]:
    """A function from a module that may be absent in a partial installation."""
    import importlib

    from rag.errors import RagError

    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise RagError(f"{what} is not available: module {module} is missing") from exc


def warn(message: str) -> None:
    """One warning line on stderr; stdout stays clean for JSON."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    """One informational line on stderr."""
    print(f"{PROG}: {message}", file=sys.stderr)
