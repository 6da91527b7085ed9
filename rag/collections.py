"""Named collections: several document sets served by one server, each public or private.

A config file (TOML, given with ``--config FILE`` or ``RAG_CONFIG``) names them::

    [collections.careers]
    corpus = "careers"          # a folder, relative to this file
    public = true               # anonymous access, rate-limited, bound to cors_origins
    cors_origins = ["https://careers.example.com"]

    [collections.handbook]
    corpus = "handbook"
    public = false              # only with an API key scoped to it
    sync_every = "6h"           # `rag serve` syncs its sources this often

    [[collections.handbook.sources]]
    type = "web"
    url = "https://handbook.example.com/sitemap.xml"

``corpus`` is a shorthand for one folder source; ``sources`` lists web and folder sources
(rag.sources, docs/sources.md), a folder's path relative to this file. Every collection also
takes uploads (rag.sources.layout says where each source's documents are kept).

Each collection has its own index (``<index_dir>/<name>`` unless ``index`` says otherwise), its
own query log (under ``<data_dir>/<name>``) and its own ``k``, not-covered message and rate
limit when it sets them. Without a config file there is one public collection, ``default``,
built from the settings as they are (``RAG_CORPUS_DIR`` into ``RAG_INDEX_DIR``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from rag.config import Settings, parse_duration
from rag.errors import CollectionNotFound, ConfigError
from rag.sources.config import FolderSource, SourceConfig, WebSource
from rag.sources.layout import Layout

DEFAULT = "default"
# Names every collection at once (/admin?collection=all), so no collection may take it.
ALL = "all"
# A name travels in URLs (/c/NAME/search), file names and model ids: kept to a safe alphabet.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class CollectionConfig(BaseModel):
    """One ``[collections.NAME]`` table as written in the config file."""

    model_config = ConfigDict(extra="forbid")

    corpus: str | None = Field(None, description="Its documents' folder, relative to the file.")
    sources: list[SourceConfig] = Field(
        default_factory=list, description="Web sites and folders its documents come from."
    )
    sync_every: str | None = Field(None, description="How often `rag serve` syncs them (6h).")
    index: str | None = Field(None, description="Its index folder (default <index_dir>/NAME).")
    public: bool = Field(False, description="Anonymous access; else only keys scoped to it.")
    cors_origins: list[str] = Field(default_factory=list)
    k: int | None = Field(None, ge=1, le=50)
    not_covered: str | None = Field(None, min_length=1)
    rate_limit: str | None = None


class ConfigFile(BaseModel):
    """The config file: at least one collection."""

    model_config = ConfigDict(extra="forbid")

    collections: dict[Name, CollectionConfig] = Field(min_length=1)

    @field_validator("collections")
    @classmethod
    def _not_reserved(cls, value: dict[str, CollectionConfig]) -> dict[str, CollectionConfig]:
        if ALL in value:
            raise ValueError(f"the name {ALL!r} is reserved: it means every collection")
        return value


@dataclass(frozen=True)
class Collection:
    """A collection as served: its name, access, its own settings (folders, overrides) and
    where its documents come from."""

    name: str
    settings: Settings
    public: bool = True
    # Empty: the one folder ``settings.corpus_dir``.
    sources: tuple[WebSource | FolderSource, ...] = ()

    @property
    def corpus_dir(self) -> Path:
        return Path(self.settings.corpus_dir)

    @property
    def layout(self) -> Layout:
        """Where each of its sources keeps its documents, and the folder its index reads."""
        sources = self.sources or (FolderSource(path=self.corpus_dir),)
        return Layout.plan(sources, self.corpus_dir, Path(self.settings.data_dir))

    @property
    def index_dir(self) -> Path:
        return Path(self.settings.index_dir)


@dataclass(frozen=True)
class Catalog:
    """Every collection one server serves, and which one the unprefixed routes serve."""

    collections: dict[str, Collection]
    # The collection /search, /ask, /chat ... serve: "default", or the only one; None when
    # several are configured and none is called "default".
    default: str | None
    config_path: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        """The collections of ``settings.config``, or the one default collection without it."""
        if settings.config is None:
            only = Collection(DEFAULT, settings, public=True)
            return cls({DEFAULT: only}, DEFAULT)
        return load_config(Path(settings.config), settings)

    @property
    def configured(self) -> bool:
        """Whether a config file named the collections (else there is only ``default``)."""
        return self.config_path is not None

    def get(self, name: str | None) -> Collection:
        """The collection called ``name`` (None: the default one); CollectionNotFound."""
        if name is None:
            if self.default is None:
                # No names: over HTTP they would tell anyone what private collections exist.
                raise CollectionNotFound(
                    f"there are several collections and none is called {DEFAULT!r}: name one, "
                    "at /c/NAME/... over HTTP (GET /collections lists those you may use) or "
                    "with --collection NAME"
                )
            name = self.default
        found = self.collections.get(name)
        if found is None:
            raise CollectionNotFound(f"no collection called {name!r}")
        return found

    def __iter__(self) -> Any:
        return iter(self.collections.values())


def load_config(path: Path, settings: Settings) -> Catalog:
    """Read a config file; ConfigError naming the file and the problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config file {path}: {_first_problem(exc)}") from None
    base = path.resolve().parent
    collections = {
        name: _collection(path, name, table, base, settings)
        for name, table in parsed.collections.items()
    }
    default = DEFAULT if DEFAULT in collections else None
    if default is None and len(collections) == 1:
        default = next(iter(collections))
    return Catalog(collections, default, path)


def _collection(
    path: Path, name: str, table: CollectionConfig, base: Path, settings: Settings
) -> Collection:
    """One collection's settings: the server's, with its folders and its overrides."""
    sources: list[WebSource | FolderSource] = [
        # A folder's path is relative to the config file, like ``corpus``.
        source.model_copy(update={"path": base / source.path})
        if isinstance(source, FolderSource)
        else source
        for source in table.sources
    ]
    if table.corpus or not sources:
        sources.insert(0, FolderSource(path=base / (table.corpus or name)))
    data = Path(settings.data_dir) / name
    layout = Layout.plan(tuple(sources), sources[0].path if _one_folder(sources) else base, data)
    index = base / table.index if table.index else Path(settings.index_dir) / name
    overrides: dict[str, Any] = {
        "corpus_dir": layout.corpus_dir,
        "index_dir": index,
        "data_dir": data,
    }
    if table.cors_origins:
        overrides["cors_origins"] = [o.rstrip("/") for o in table.cors_origins]
    for field in ("k", "not_covered", "rate_limit"):
        value = getattr(table, field)
        if value is not None:
            overrides[field] = value
    if table.sync_every is not None:
        try:
            overrides["sync_every"] = parse_duration(table.sync_every)
        except ValueError as exc:
            raise ConfigError(
                f"config file {path}: collection {name!r}: sync_every: {exc}"
            ) from None
    try:
        own = settings.model_copy(update=overrides)
        # Validated as the environment's values are ("60/minute", k within max_k...).
        own = Settings.model_validate(own.model_dump())
    except ValidationError as exc:
        raise ConfigError(
            f"config file {path}: collection {name!r}: {_first_problem(exc)}"
        ) from None
    return Collection(name, own, public=table.public, sources=tuple(sources))


def _one_folder(sources: list[WebSource | FolderSource]) -> bool:
    return len(sources) == 1 and isinstance(sources[0], FolderSource)


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    # A source's type tags its fields in pydantic's path (sources.1.web.url): not in the file.
    loc = [part for i, part in enumerate(error["loc"])
           if not (part in ("web", "folder") and i and isinstance(error["loc"][i - 1], int))]  # fmt: skip
    where = ".".join(str(part) for part in loc)
    return f"{where}: {error['msg']}" if where else error["msg"]
