"""Encode several image batches at once on a CPU, each on its own core (``--cpu-streams``).

Why: one batch split across all cores by PyTorch's intra-op threads leaves cores idle at every
synchronisation point between operations (LayerNorm, softmax, GELU and the small attention
matmuls of a ViT are too short to split well). Whole batches run side by side, each with one
intra-op thread, keep every core busy inside its own large matrix products: on the 2-core
development machine, two one-thread batches encoded ViT-B-32 at 15.06 and 13.44 images/s in
two runs of ``benchmarks/bench_image_tower.py --no-compile``, against 13.83 and 13.34 for one
two-thread batch (1.09x and 1.01x: the gain is small and moves with the machine's load). Each batch keeps the user's batch size,
so the per-image arithmetic is the same as a one-stream run; PyTorch releases the GIL inside
its operators, so threads (sharing one copy of the weights) are enough.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
from typing import Any, Callable, Iterator

from letitwag.engine.executors import default_workers
from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)

# Above this many streams, the activations of the batches in flight grow while the gain of
# splitting a core count further has not been measured; larger machines keep intra-op threads.
MAX_AUTO_STREAMS = 8


def resolve_streams(requested: int | None, device: str, compiled: bool) -> int:
    """How many batches to encode at once: ``requested``, or (``None``) one per CPU up to
    ``MAX_AUTO_STREAMS`` on a CPU device; always 1 on an accelerator (its own queue overlaps
    work) and for a compiled tower (its graph is compiled for one caller at a time)."""
    if requested is not None and requested < 1:
        raise UserInputError(f"--cpu-streams must be at least 1 (got {requested})")
    if not str(device).startswith("cpu") or compiled:
        if requested not in (None, 1):
            logger.info("--cpu-streams %d ignored: %s", requested,
                        "the image tower is compiled" if compiled else f"device {device} is not a CPU")
        return 1
    return requested if requested is not None else min(default_workers(), MAX_AUTO_STREAMS)


def threads_per_stream(streams: int) -> int | None:
    """Intra-op threads each of ``streams`` streams gets (its share of the CPUs); ``None`` for a
    single stream, which keeps torch's own setting."""
    return max(1, default_workers() // streams) if streams > 1 else None


@contextlib.contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for the block, then restore it (``None``: leave it)."""
    import torch

    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class OrderedStreams:
    """Run ``fn(item)`` on up to ``streams`` threads; results come back in submission order.

    ``submit`` returns the results that are ready to be handed on (oldest first), blocking only
    when ``streams`` items are already in flight; ``drain`` returns the rest. With one stream
    ``fn`` runs in the caller's thread, exactly as a plain loop would.
    """

    def __init__(self, fn: Callable[[Any], Any], streams: int) -> None:
        self.fn = fn
        self.streams = streams
        self.pool = concurrent.futures.ThreadPoolExecutor(streams, "letitwag-encode") if streams > 1 else None
        self.in_flight: collections.deque = collections.deque()

    def submit(self, key: Any, item: Any) -> list[tuple[Any, Any]]:
        """Start ``fn(item)``; return ``(key, result)`` for every finished item that is next in order."""
        if self.pool is None:
            return [(key, self.fn(item))]
        self.in_flight.append((key, self.pool.submit(self.fn, item)))
        done = []
        while self.in_flight and (len(self.in_flight) >= self.streams or self.in_flight[0][1].done()):
            oldest_key, future = self.in_flight.popleft()
            done.append((oldest_key, future.result()))
        return done

    def drain(self) -> list[tuple[Any, Any]]:
        """Wait for everything still in flight; ``(key, result)`` in submission order."""
        done = []
        while self.in_flight:
            key, future = self.in_flight.popleft()
            done.append((key, future.result()))
        return done

    def close(self) -> None:
        """Stop the threads; items still running are waited for, queued ones cancelled."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "OrderedStreams":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
