"""Routes: /feedback on a logged query."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from rag.errors import BadQuery
from rag.serve.deps import Svc
from rag.serve.schemas import (
    ERRORS,
    QUERY_ERRORS,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
)

router = APIRouter(responses=ERRORS, tags=["query"])


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    responses={
        **QUERY_ERRORS,
        404: {"model": ErrorResponse, "description": "No logged query with that id"},
    },
)
async def feedback(body: FeedbackRequest, svc: Svc) -> dict[str, str]:
    """Record a thumbs up or down (and an optional comment) on a logged query; a later rating
    of the same query replaces the earlier one."""
    limit = svc.settings.max_comment_chars
    if body.comment is not None and len(body.comment) > limit:
        raise BadQuery(f"comment is longer than {limit} characters", field="comment")
    await asyncio.wrap_future(svc.querylog.feedback(body.query_id, body.rating, body.comment))
    return {"status": "recorded", "query_id": body.query_id}
