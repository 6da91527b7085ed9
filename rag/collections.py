"""Named collections: several document sets served by one server, each public or private.

A config file (TOML, given with ``--config FILE`` or ``RAG_CONFIG``) names them::

    [collections.careers]
    corpus = "careers"          # a folder, relative to this file
    public = true               # anonymous access, rate-limited, bound to cors_origins
    cors_origins = ["https://careers.example.com"]

    [collections.handbook]
    corpus = "handbook"
    public = false              # only with an API key scoped to it

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

from rag.config import Settings
from rag.errors import CollectionNotFound, ConfigError

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
    """A collection as served: its name, access and its own settings (folders, overrides)."""

    name: str
    settings: Settings
    public: bool = True

    @property
    def corpus_dir(self) -> Path:
        return Path(self.settings.corpus_dir)

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
    corpus = base / table.corpus if table.corpus else base / name
    index = base / table.index if table.index else Path(settings.index_dir) / name
    overrides: dict[str, Any] = {
        "corpus_dir": corpus,
        "index_dir": index,
        "data_dir": Path(settings.data_dir) / name,
    }
    if table.cors_origins:
        overrides["cors_origins"] = [o.rstrip("/") for o in table.cors_origins]
    for field in ("k", "not_covered", "rate_limit"):
        value = getattr(table, field)
        if value is not None:
            overrides[field] = value
    try:
        own = settings.model_copy(update=overrides)
        # Validated as the environment's values are ("60/minute", k within max_k...).
        own = Settings.model_validate(own.model_dump())
    except ValidationError as exc:
        raise ConfigError(
            f"config file {path}: collection {name!r}: {_first_problem(exc)}"
        ) from None
    return Collection(name, own, public=table.public)


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]
