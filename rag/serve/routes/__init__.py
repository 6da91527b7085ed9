"""One router per resource; handlers parse, call the services and format.

``ROUTERS`` are served once; ``COLLECTION_ROUTERS`` serve the default collection at their own
paths and every collection under ``/c/{collection}`` (rag.serve.app includes them twice).
"""

from rag.serve.routes import (
    admin,
    admin_sources,
    chat,
    documents,
    feedback,
    openai_compat,
    search,
    service,
    uploads,
)

ROUTERS = (service.router, admin.router, admin_sources.router, openai_compat.router)
COLLECTION_ROUTERS = (
    search.router,
    chat.router,
    documents.router,
    uploads.router,
    service.collection_router,
    feedback.router,
)

__all__ = ["COLLECTION_ROUTERS", "ROUTERS"]
