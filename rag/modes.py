"""The ranking modes a search can use; imports nothing, so the CLI can list them at start-up."""

from __future__ import annotations

from typing import Literal

Mode = Literal["hybrid", "dense", "sentence", "bm25"]

MODES: tuple[str, ...] = ("hybrid", "dense", "sentence", "bm25")
