"""Run a model over a batch, halving the batch size when the device runs out of memory.

Why: users pick ``--batch-size`` without knowing their accelerator's memory; a run should
adapt (and say so) rather than crash after an hour of work.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


class AdaptiveBatcher:
    """Apply ``fn`` to slices of at most ``batch_size`` items, halving it after an out-of-memory error.

    Safe to share between the threads of ``--cpu-streams``: a size is halved once, however many
    threads ran out of memory at it; the others retry at the size already reduced.
    """

    def __init__(self, batch_size: int, what: str):
        self.batch_size = max(1, int(batch_size))
        self.what = what
        self.reductions: list[int] = []
        self._lock = threading.Lock()

    def run(self, fn: Callable, items: Sequence) -> list:
        import torch

        outputs, start = [], 0
        while start < len(items):
            size = self.batch_size
            try:
                outputs.append(fn(items[start : start + size]))
                start += size
            except Exception as error:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                if not is_out_of_memory(error):
                    raise
                if size == 1:
                    raise UserInputError(f"out of memory encoding {self.what} even at batch size 1; use a smaller model or another device") from None
                with self._lock:
                    if self.batch_size == size:  # not already halved by another thread
                        self.batch_size = size // 2
                        self.reductions.append(self.batch_size)
                        logger.warning("out of memory encoding %s at batch size %d; retrying with %d", self.what, size,
                                       self.batch_size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        return outputs
