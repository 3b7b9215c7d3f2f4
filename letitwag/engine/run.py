"""The driver: skip finished shards, run the rest on an executor, store each partial as it arrives.

The shard contract, for any stage:

* a ``Shard`` list with stable keys (see ``letitwag.engine.shards``);
* a top-level, picklable ``map_fn(spec) -> bytes`` (the partial, serialised by the stage);
* an associative ``merge``: the stage folds the stored partials *in shard order* (see
  ``merged``), so the result never depends on which executor ran the shards or in which order
  they finished: local and Ray runs, and resumed and uninterrupted runs, give identical output.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, TypeVar

from tqdm.auto import tqdm

from letitwag.engine.executors import Executor, MapFunction
from letitwag.engine.shards import Shard
from letitwag.engine.store import ShardStore
from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)

P = TypeVar("P")


@dataclass
class RunReport:
    """Which shards this run reused from an earlier run and which it computed."""

    shards: list[Shard]
    reused: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    executor: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-able counts for provenance."""
        return {"shards": len(self.shards), "reused": len(self.reused), "computed": len(self.computed),
                **self.executor}


def run_shards(
    shards: Sequence[Shard],
    map_fn: MapFunction,
    store: ShardStore,
    executor: Executor,
    description: str = "shards",
) -> RunReport:
    """Compute every shard that ``store`` lacks; hold the store's lock while doing so."""
    keys = [shard.key for shard in shards]
    if len(set(keys)) != len(keys):
        raise ValueError("shard keys must be unique")
    report = RunReport(list(shards), executor=executor.describe())
    with store.lock():
        pending = []
        for shard in shards:
            if store.is_complete(shard):
                report.reused.append(shard.key)
            else:
                pending.append(shard)
        logger.info("%d shard(s): %d reused from an earlier run, %d to compute on %s", len(shards),
                    len(report.reused), len(pending), executor.name)
        with tqdm(total=len(shards), initial=len(report.reused), unit="shard", desc=description) as progress:
            results = executor.map_unordered(map_fn, pending)
            try:
                for shard, partial in results:
                    if not isinstance(partial, bytes):
                        raise TypeError(f"map function returned {type(partial).__name__}, not bytes")
                    store.save(shard, partial)
                    report.computed.append(shard.key)
                    progress.update(1)
            finally:
                close = getattr(results, "close", None)
                if close is not None:
                    close()
    return report


def iter_partials(store: ShardStore, shards: Sequence[Shard], decode: Callable[[bytes], P]) -> Iterator[P]:
    """Decoded partials in shard order (each verified complete first)."""
    for shard in shards:
        data = store.load_complete(shard)
        if data is None:
            raise UserInputError(f"{store.partial_path(shard.key)}: shard is missing or stale; rerun the command")
        yield decode(data)


def merged(store: ShardStore, shards: Sequence[Shard], decode: Callable[[bytes], P], merge: Callable[[P, P], P]) -> P:
    """Fold all partials with the associative ``merge``, in shard order."""
    if not shards:
        raise ValueError("nothing to merge: no shards")
    return functools.reduce(merge, iter_partials(store, shards, decode))
