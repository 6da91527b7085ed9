"""What a source is, as a collection's config file names it: a web site or a folder.

``[[collections.NAME.sources]]`` tables are read into these models; ``type`` picks the model, and
a mistake is refused with the source's position and field named (``parse_sources``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from rag.errors import BadSourceConfig

try:
    VERSION = version("career-rag")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0"
PROJECT_URL = "https://github.com/career-rag/career-rag"
# Site owners read this in their logs: who is crawling and where to learn what it does.
DEFAULT_USER_AGENT = f"career-rag/{VERSION} (+{PROJECT_URL}/blob/main/docs/sources.md)"


class WebSource(BaseModel):
    """A web site: a sitemap (or sitemap index, gzipped or not), or a start page to crawl."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["web"] = "web"
    url: str = Field(description="A sitemap, or the page a same-site crawl starts from.")
    include: list[str] = Field(
        default_factory=list,
        description="Path prefixes kept (`/guides/`); empty: the folder of `url` and below.",
    )
    max_pages: int = Field(500, ge=1, le=100_000, description="Pages requested at most.")
    max_depth: int = Field(5, ge=0, le=50, description="Links followed from the start page.")
    max_bytes_per_page: int = Field(10 * 1024 * 1024, ge=1024, description="Larger is skipped.")
    max_seconds: float = Field(1800.0, gt=0, description="The whole sync stops after this.")
    delay_seconds: float = Field(
        1.0, ge=0, description="Between two requests' starts (robots.txt's Crawl-delay if longer)."
    )
    connections: int = Field(2, ge=1, le=2, description="Open connections to the site.")
    timeout_seconds: float = Field(30.0, gt=0, description="One request's timeout.")
    user_agent: str = Field(DEFAULT_USER_AGENT, min_length=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("include")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not p.startswith("/")]
        if bad:
            raise ValueError(f"path prefixes start with '/': {', '.join(map(repr, bad))}")
        return value

    @field_validator("user_agent")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(c in value for c in "\r\n"):
            raise ValueError("must be one line")
        return value.strip()

    def label(self) -> str:
        """How reports name this source."""
        return self.url


class FolderSource(BaseModel):
    """A folder of documents, read where it is (nothing is copied)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["folder"] = "folder"
    path: Path

    def label(self) -> str:
        """How reports name this source."""
        return str(self.path)


SourceConfig = Annotated[WebSource | FolderSource, Field(discriminator="type")]
_SOURCES = TypeAdapter(list[SourceConfig])


def parse_sources(raw: Sequence[dict[str, Any]]) -> list[WebSource | FolderSource]:
    """Sources from config tables; raises BadSourceConfig naming the source and field."""
    try:
        return _SOURCES.validate_python(list(raw))
    except ValidationError as exc:
        raise BadSourceConfig(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    """``sources[1].max_pages: Input should be greater than or equal to 1`` and the like."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        # The tagged union adds the type's name to the path ([1, 'web', 'max_pages']).
        if len(loc) > 1 and loc[1] in ("web", "folder"):
            del loc[1]
        where = f"sources[{loc[0]}]" + "".join(f".{part}" for part in loc[1:]) if loc else "sources"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid":
            message = "type must be 'web' or 'folder'"
        elif err["type"] == "union_tag_not_found":
            message = "needs a type ('web' or 'folder')"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
