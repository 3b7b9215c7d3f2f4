"""Wall-clock timing of named stages, so the demo's summary can say where the time went."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator


@contextlib.contextmanager
def timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``seconds[name]`` (rounded to 0.01 s)."""
    clock = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - clock, 2)
