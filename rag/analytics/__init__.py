"""Analytics: the query log the server writes, and the coverage report `rag report` and /admin show.

Nothing here imports the web app, so the CLI reads the log without loading FastAPI.
"""

from rag.analytics.querylog import QueryLog, QueryRecord

__all__ = ["QueryLog", "QueryRecord"]
