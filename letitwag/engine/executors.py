"""Executors: run a top-level map function over shards and hand results back as they finish.

An executor only moves work and bytes: ``map_fn(shard.spec)`` runs somewhere (this process, a
worker process, a Ray node) and returns the shard's partial as ``bytes``; the executor yields
``(shard, partial)`` in completion order. Storing partials and deciding what to skip is the
driver's job (``letitwag.engine.run``), so every executor resumes the same way.

On a failing shard an executor stops starting new shards, still yields the shards already
running (their work is valid and gets stored), then raises the first error. So a corrupt file
in the middle of a run loses no finished shard.
"""

from __future__ import annotations

import concurrent.futures
from concurrent.futures.process import BrokenProcessPool
import logging
import multiprocessing
import multiprocessing.forkserver
import os
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Sequence

from letitwag.engine.shards import Shard
from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)

MapFunction = Callable[[Any], bytes]

# Object store for a Ray cluster started by us: partials are small and go straight to the driver.
LOCAL_RAY_OBJECT_STORE_BYTES = 200 * 1024 * 1024


def default_workers() -> int:
    """The CPUs this process may use (respects affinity masks / container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Executor(ABC):
    """Runs ``map_fn(shard.spec)`` for each shard and yields ``(shard, partial bytes)``."""

    name: str

    @abstractmethod
    def map_unordered(self, map_fn: MapFunction, shards: Sequence[Shard]) -> Iterator[tuple[Shard, bytes]]:
        """Yield each shard with its partial as soon as it is done (any order)."""

    @abstractmethod
    def describe(self) -> dict:
        """JSON-able description for provenance (never part of a fingerprint: results do not depend on it)."""


class LocalExecutor(Executor):
    """A process pool on this machine; ``workers=1`` runs in this process (no pickling, easy debugging).

    Workers are forked from a fork server where the platform has one (Linux, macOS), else
    spawned; either way they start from a clean single-threaded process, never from a copy of
    the driver with its threads and locks. The fork server is started here, at construction,
    and imports the ``preload`` modules while the driver goes on planning: a stage names what
    its workers would otherwise load one by one (a compiled kernel takes ~0.7 s per process),
    and every worker forked afterwards starts with it in memory. As with ``spawn``, a script
    that runs a pool must guard its entry point with ``if __name__ == "__main__":``.
    """

    name = "local"

    def __init__(self, workers: int | None = None, preload: Sequence[str] = ()) -> None:
        self.workers = workers or default_workers()
        if self.workers < 1:
            raise UserInputError(f"--workers must be at least 1 (got {self.workers})")
        self.context = worker_context(preload) if self.workers > 1 else None

    def describe(self) -> dict:
        return {"executor": self.name, "workers": self.workers}

    def map_unordered(self, map_fn: MapFunction, shards: Sequence[Shard]) -> Iterator[tuple[Shard, bytes]]:
        if self.context is None or len(shards) <= 1:
            for shard in shards:
                yield shard, map_fn(shard.spec)
            return
        workers = min(self.workers, len(shards))
        # the map function goes to each worker once, at its start, not with every shard: a stage's
        # function may carry ~300 kB (the text matcher) and state it builds on first use
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=self.context, initializer=_install_map_fn,
                                                      initargs=(map_fn,))
        try:
            yield from _drain_bounded(
                submit=lambda shard: pool.submit(_run_installed_map_fn, shard.spec),
                wait_any=_wait_futures,
                result=_future_result,
                shards=shards,
                in_flight=2 * workers,
            )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def worker_context(preload: Sequence[str]) -> multiprocessing.context.BaseContext:
    """The fork server's context (started now, importing ``preload``), or ``spawn`` without one.

    The fork server is one per driver process: the first executor that starts it decides what
    it preloads; later ones reuse it (a worker imports anything else it needs on first use).
    Workers get the driver's working directory and ``sys.path`` at each start, but the
    environment variables the fork server started with.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    if preload:
        context.set_forkserver_preload(list(preload))
    multiprocessing.forkserver.ensure_running()
    return context


class RayExecutor(Executor):
    """Ray tasks, one per shard; partials come back to the driver through the object store.

    With ``address`` it joins that cluster (``auto``, ``ray://host:10001``, ...), which must
    have letitwag installed and see the input paths; without it, it starts a local Ray with
    ``workers`` CPUs and shuts it down afterwards. A Ray already initialised by the caller is
    used as is and left running.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self.address = address
        self.workers = workers

    def describe(self) -> dict:
        return {"executor": self.name, "ray_address": self.address, "workers": self.workers}

    def map_unordered(self, map_fn: MapFunction, shards: Sequence[Shard]) -> Iterator[tuple[Shard, bytes]]:
        try:
            import ray
        except ImportError:
            raise UserInputError("--executor ray needs Ray: pip install 'letitwag[ray]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            self._init(ray)
        try:
            remote_map = ray.remote(num_cpus=1, max_retries=2)(_apply)
            function_ref = ray.put(map_fn)
            slots = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
            yield from _drain_bounded(
                submit=lambda shard: remote_map.remote(function_ref, shard.spec),
                wait_any=lambda pending: _wait_ray(ray, pending),
                result=lambda ref: _ray_result(ray, ref),
                shards=shards,
                in_flight=slots,
            )
        finally:
            if started_here:
                ray.shutdown()

    def _init(self, ray) -> None:
        if self.address:
            logger.info("connecting to the Ray cluster at %s", self.address)
            ray.init(address=self.address, log_to_driver=False)
        else:
            workers = self.workers or default_workers()
            logger.info("starting a local Ray with %d CPUs", workers)
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                object_store_memory=LOCAL_RAY_OBJECT_STORE_BYTES,
                log_to_driver=False,
            )


def make_executor(name: str, workers: int | None = None, ray_address: str | None = None,
                  preload: Sequence[str] = ()) -> Executor:
    """The executor for ``--executor NAME``; ``preload``: modules local workers start with (see
    ``LocalExecutor``)."""
    if name == "local":
        if ray_address:
            raise UserInputError("--ray-address needs --executor ray")
        return LocalExecutor(workers, preload)
    if name == "ray":
        return RayExecutor(ray_address, workers)
    raise UserInputError(f"unknown executor {name!r}: use local or ray")


_installed_map_fn: MapFunction | None = None  # in a local worker process: the pool's map function


def _install_map_fn(map_fn: MapFunction) -> None:
    """A local worker's initializer: keep the pool's map function for every shard it runs."""
    global _installed_map_fn
    _installed_map_fn = map_fn


def _run_installed_map_fn(spec: Any) -> bytes:
    return _installed_map_fn(spec)


def _apply(map_fn: MapFunction, spec: Any) -> bytes:
    """The Ray task body: a plain top-level function so that it pickles by reference."""
    return map_fn(spec)


def _future_result(future: concurrent.futures.Future) -> bytes:
    try:
        return future.result()
    except BrokenProcessPool:
        raise UserInputError(
            "a worker process died (killed, out of memory, or a script that calls the API without an "
            "`if __name__ == '__main__':` guard); finished shards are kept: fix that and rerun, or use --workers 1"
        ) from None


def _wait_futures(pending: set) -> tuple[set, set]:
    done, not_done = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
    return set(done), set(not_done)


def _wait_ray(ray, pending: set) -> tuple[set, set]:
    done, not_done = ray.wait(list(pending), num_returns=1)
    return set(done), set(not_done)


def _ray_result(ray, ref) -> bytes:
    """``ray.get`` that re-raises a task's ``UserInputError`` as itself (one clean line for the CLI)."""
    from ray.exceptions import RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, UserInputError):
            raise UserInputError(str(cause)) from None
        raise


def _drain_bounded(submit, wait_any, result, shards: Sequence[Shard], in_flight: int) -> Iterator[tuple[Shard, bytes]]:
    """Keep at most ``in_flight`` shards running; on an error, finish the running ones, then raise.

    Bounding what is in flight bounds the driver's memory (finished partials wait in memory
    only until the driver stores them) however many shards there are.
    """
    queue = list(reversed(shards))
    running: dict[Any, Shard] = {}
    first_error: BaseException | None = None
    while queue or running:
        while queue and first_error is None and len(running) < in_flight:
            shard = queue.pop()
            running[submit(shard)] = shard
        if not running:
            break
        done, _ = wait_any(set(running))
        for handle in done:
            shard = running.pop(handle)
            try:
                partial = result(handle)
            except Exception as error:  # noqa: BLE001 - re-raised below, after the running shards finish
                if first_error is None:
                    logger.error("shard %s failed; finishing the %d running shard(s) before stopping", shard.key,
                                 len(running))
                    first_error = error
                continue
            yield shard, partial
    if first_error is not None:
        raise first_error
