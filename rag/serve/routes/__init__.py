"""One router per resource; handlers parse, call the services and format."""

from rag.serve.routes import admin, chat, documents, feedback, openai_compat, search, service

ROUTERS = (search.router, chat.router, documents.router, service.router, feedback.router)
ROUTERS += (admin.router,)
ROUTERS += (openai_compat.router,)

__all__ = ["ROUTERS"]
