"""Image batches encoded side by side on CPU threads (``--cpu-streams``)."""

import threading
import time

import pytest
import torch

from letitwag.engine.executors import default_workers
from letitwag.errors import UserInputError
from letitwag.harness.streams import MAX_AUTO_STREAMS, OrderedStreams, intra_op_threads, resolve_streams


def test_results_come_back_in_submission_order_from_several_threads():
    threads = set()

    def slow_square(value):
        threads.add(threading.get_ident())
        time.sleep(0.02 * (value % 3))  # later items often finish first
        return value * value

    collected = []
    with OrderedStreams(slow_square, 3) as running:
        for value in range(12):
            collected += running.submit(value, value)
            assert len(running.in_flight) < 3
        collected += running.drain()
    assert collected == [(value, value * value) for value in range(12)]
    assert len(threads) > 1 and threading.get_ident() not in threads


def test_one_stream_runs_in_the_callers_thread():
    callers = []
    with OrderedStreams(lambda value: callers.append(threading.get_ident()) or value, 1) as running:
        assert running.submit("a", 7) == [("a", 7)]
        assert running.drain() == []
    assert callers == [threading.get_ident()]


def test_an_error_in_a_stream_reaches_the_caller():
    def fail(value):
        raise ValueError(f"bad {value}")

    with OrderedStreams(fail, 2) as running, pytest.raises(ValueError, match="bad 0"):
        running.submit(0, 0)
        running.submit(1, 1)
        running.drain()


def test_stream_count_rules():
    assert resolve_streams(None, "cpu", compiled=False) == min(default_workers(), MAX_AUTO_STREAMS)
    assert resolve_streams(3, "cpu", compiled=False) == 3
    assert resolve_streams(4, "cuda:0", compiled=False) == 1
    assert resolve_streams(None, "cpu", compiled=True) == 1
    with pytest.raises(UserInputError, match="--cpu-streams must be at least 1"):
        resolve_streams(0, "cpu", compiled=False)


def test_intra_op_threads_are_restored():
    before = torch.get_num_threads()
    with intra_op_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_a_batcher_shared_by_streams_halves_each_size_once():
    from letitwag.harness.batching import AdaptiveBatcher

    batcher = AdaptiveBatcher(64, "images")

    def encode(items):
        if len(items) > 16:
            raise RuntimeError("CPU: out of memory")
        time.sleep(0.01)
        return sum(items)

    with OrderedStreams(lambda items: batcher.run(encode, items), 4) as running:
        results = []
        for start in range(0, 512, 64):
            results += running.submit(start, list(range(start, start + 64)))
        results += running.drain()
    assert [sum(parts) for _, parts in results] == [sum(range(s, s + 64)) for s in range(0, 512, 64)]
    assert batcher.reductions == [32, 16] and batcher.batch_size == 16
