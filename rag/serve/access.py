"""Who may use which collection: the caller's key (or the admin token), checked once per request.

A request sends ``Authorization: Bearer KEY``. Admin keys reach every collection; other keys
reach the collections they are scoped to; no key reaches the public collections only. A
private collection answers 401 without a key and 403 with a key that is not scoped to it.

Only a value shaped like one of our keys (``rag_<id>_<secret>``) is checked: OpenAI's clients
must send some key, and one made up for a public collection (``sk-anything``) is ignored, as
before keys existed. Each wrong key counts against the client's budget of failed
authentications, shared with the admin sign-in (rag.serve.admin_auth); past it, every request
that sends a key is refused with 429 until the window passes, the right key included, so that
the budget tells a guesser nothing. ``RAG_ADMIN_TOKEN`` opens /admin only, where it always did.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread
from fastapi import HTTPException
from starlette.requests import HTTPConnection

from rag.collections import Collection
from rag.keys import PREFIX, KeyInfo, KeyStore
from rag.serve.admin_auth import Failures

AUTH_HEADERS = {"WWW-Authenticate": 'Bearer realm="career-rag"'}


@dataclass(frozen=True)
class Caller:
    """Who sent a request: anonymous, a key, or the admin."""

    key: KeyInfo | None = None
    admin: bool = False

    @property
    def anonymous(self) -> bool:
        return self.key is None and not self.admin

    def may_use(self, collection: Collection) -> bool:
        """Whether this caller reaches ``collection``."""
        if collection.public or self.admin:
            return True
        return self.key is not None and self.key.may_use(collection.name)

    @property
    def may_upload(self) -> bool:
        """Whether this caller may add documents to the collections it reaches."""
        return self.admin or (self.key is not None and self.key.upload)


ANONYMOUS = Caller()


class Access:
    """Identifies callers by their key and decides what they reach; one per server."""

    def __init__(self, keys: KeyStore, failures: Failures) -> None:
        self.keys = keys
        self.failures = failures

    async def caller(self, connection: HTTPConnection) -> Caller:
        """The request's caller (cached on it); 401 for a wrong key, 429 past the budget."""
        cached = connection.scope.get("rag.caller")
        if isinstance(cached, Caller):
            return cached
        scheme, _, given = connection.headers.get("authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given.startswith(PREFIX):
            return ANONYMOUS
        client = connection.client.host if connection.client else "unknown"
        retry = await self.failures.retry_after(client)
        if retry is not None:
            raise HTTPException(
                429,
                detail=f"too many failed authentications from this client (at most "
                f"{self.failures.rate}): try again in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        key = await anyio.to_thread.run_sync(self.keys.check, given)
        if key is None:
            await self.failures.failed(client)
            raise HTTPException(401, detail="the API key is wrong or revoked", headers=AUTH_HEADERS)
        found = Caller(key=key, admin=key.admin)
        connection.scope["rag.caller"] = found
        return found

    async def authorise(self, connection: HTTPConnection, collection: Collection) -> Caller:
        """The caller, if it may use ``collection``; 401 without a key, 403 with one that is
        not scoped to it."""
        caller = await self.caller(connection)
        if caller.may_use(collection):
            return caller
        if caller.anonymous:
            raise HTTPException(
                401,
                detail=f"collection {collection.name!r} is private: send Authorization: Bearer "
                "KEY with a key scoped to it",
                headers=AUTH_HEADERS,
            )
        raise HTTPException(403, detail=f"this key may not use collection {collection.name!r}")
