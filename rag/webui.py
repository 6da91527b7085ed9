"""HTML routes: chat page, source viewer, widget script and demo page (static files in web/)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
