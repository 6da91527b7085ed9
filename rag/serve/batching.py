"""Micro-batching of concurrent query encodes.

A sentence-transformers forward pass over 16 queries costs little more than over one, but the
model may only run one pass at a time. ``MicroBatcher`` therefore queues every caller's text and
one consumer task encodes what is queued as a single batch in a worker thread:

* a lone query starts at once: nothing is waited for when nothing else is queued;
* queries arriving while a batch is being encoded wait for it anyway, and form the next batch;
* when several queries are already queued (a burst), the batch lingers up to ``max_wait_ms`` for
  more, up to ``max_batch`` queries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np

Encode = Callable[[Sequence[str]], np.ndarray]
_Item = tuple[str, "asyncio.Future[np.ndarray]"]


class MicroBatcher:
    """Gathers concurrent ``encode(text)`` calls into batched calls of ``encode_batch``."""

    def __init__(
        self,
        encode_batch: Encode,
        *,
        max_wait_ms: float = 2.0,
        max_batch: int = 64,
        executor: Executor | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._encode_batch = encode_batch
        self._max_wait = max(0.0, max_wait_ms) / 1000
        self._max_batch = max_batch
        # One thread is enough: the model runs one batch at a time, and a private thread keeps
        # encodes from queueing behind (or starving) the shared request thread pool.
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="rag-encode")
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0
        self.encoded = 0
        self.largest_batch = 0

    async def encode(self, text: str) -> np.ndarray:
        """The vector of one text, encoded together with whatever else is queued."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        if self._task is None or self._task.done():
            # Started lazily so the queue and task belong to the loop that serves requests.
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(self._queue))
        assert self._queue is not None
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((text, future))
        return await future

    async def close(self) -> None:
        """Stop the consumer, failing queued callers, and release the worker thread."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(RuntimeError("batcher is closed"))
        if self._own_executor:
            self._executor.shutdown(wait=False)

    async def _run(self, q: asyncio.Queue[_Item]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await q.get()]
            # Let callers scheduled in the same loop iteration (a gather, say) join for free.
            await asyncio.sleep(0)
            self._take_queued(q, batch)
            if 1 < len(batch) < self._max_batch and self._max_wait > 0:
                await self._linger(q, batch, loop.time() + self._max_wait)
            live = [(text, fut) for text, fut in batch if not fut.cancelled()]
            if not live:
                continue
            try:
                vectors = await loop.run_in_executor(
                    self._executor, self._encode_batch, [text for text, _ in live]
                )
                if len(vectors) != len(live):
                    raise RuntimeError(f"encoder returned {len(vectors)} vectors for {len(live)}")
            except Exception as exc:
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            except asyncio.CancelledError:
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(RuntimeError("batcher is closed"))
                raise
            self.batches += 1
            self.encoded += len(live)
            self.largest_batch = max(self.largest_batch, len(live))
            for (_, fut), vector in zip(live, vectors, strict=True):
                if not fut.done():
                    fut.set_result(vector)

    def _take_queued(self, q: asyncio.Queue[_Item], batch: list[_Item]) -> None:
        while len(batch) < self._max_batch and not q.empty():
            batch.append(q.get_nowait())

    async def _linger(self, q: asyncio.Queue[_Item], batch: list[_Item], deadline: float) -> None:
        """A burst is under way: wait for more queries until the batch is full or time is up."""
        loop = asyncio.get_running_loop()
        while len(batch) < self._max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(q.get(), remaining))
            except TimeoutError:
                return
            self._take_queued(q, batch)
