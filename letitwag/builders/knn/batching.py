"""Opportunistic micro-batching: concurrent requests share one faiss search / model forward.

Why: one query against a flat index scans every vector; 64 queries scanned together cost
little more than one (a matrix product instead of 64 vector products), and a model forward
on a batch is far cheaper per item than one by one. A single background thread takes the
first waiting item and everything else already queued (up to ``max_batch``) — no timer, so an
idle server adds no latency and a busy one batches automatically. The heavy call runs outside
the event loop and releases the GIL (faiss, torch), so HTTP parsing continues in parallel.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)

_STOP = object()


class MicroBatcher:
    """Call ``function(items) -> results`` (same length, same order) on batches of submitted items."""

    def __init__(self, function: Callable[[list], Sequence], max_batch: int = 64, name: str = "batcher",
                 initializer: Callable[[], None] | None = None) -> None:
        """``initializer`` runs first on the batch thread, for per-thread settings such as OpenMP's thread count."""
        self._function = function
        self._initializer = initializer
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((item, future))
        return future

    async def run(self, item: Any) -> Any:
        """Await the result for ``item`` from inside an event loop."""
        return await asyncio.wrap_future(self.submit(item))

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        if self._initializer is not None:
            self._initializer()
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is _STOP:
                    stop = True
                    break
                batch.append(entry)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list) -> None:
        items = [item for item, _ in batch]
        try:
            results = self._function(items)
            if len(results) != len(items):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        except BaseException as error:  # every waiter must hear about the failure
            logger.exception("batch of %d failed", len(items))
            for _, future in batch:
                future.set_exception(error)
            return
        for (_, future), result in zip(batch, results):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
