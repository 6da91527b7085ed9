"""Routes: /documents and /documents/{doc_id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam

from rag.serve.deps import Ready
from rag.serve.schemas import ERRORS, DocumentDetail, DocumentList, ErrorResponse

router = APIRouter(responses=ERRORS, tags=["documents"])


@router.get("/documents", response_model=DocumentList)
async def list_documents(svc: Ready) -> dict[str, Any]:
    """Every document: id, title, source, section outline and chunk count."""
    return {"documents": svc.documents}


@router.get(
    "/documents/{doc_id}",
    response_model=DocumentDetail,
    responses={404: {"model": ErrorResponse, "description": "No such document"}},
)
def get_document(doc_id: Annotated[str, PathParam(max_length=512)], svc: Ready) -> dict[str, Any]:
    """One document with its text and sections (looked up in the index, never on disk)."""
    doc = svc.document(doc_id)
    return {"id": doc.id, "title": doc.title, "source": doc.source, "offset": doc.offset,
            "text": doc.text, "sections": doc.outline}  # fmt: skip
