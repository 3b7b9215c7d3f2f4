"""``letitwag frequency count`` killed with SIGKILL at several seeded points, rerun after each kill.

Proves: a kill never leaves a table behind; every rerun reuses each shard finished before it
(its marker and partial are not rewritten) and computes only the rest; the final outputs are
byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import json
from pathlib import Path

from fault_helpers import (FREQUENCY_OUTPUTS, after, count_argv, early_delay, kill_points, kill_when, letitwag_command,
                      mtimes, run_cli)


def shard_files(out: Path) -> dict[str, int]:
    """Markers and partials of the finished shards (those with a marker), with their mtimes.

    A partial without a marker (killed between the two writes) is unfinished and may be redone.
    """
    keys = [p.name.removesuffix(".done") for p in (out / "shards").glob("*.done")]
    return mtimes(out / "shards" / f"{key}{suffix}" for key in keys for suffix in (".done", ".partial"))


def markers(out: Path) -> int:
    return len(list((out / "shards").glob("*.done")))


def test_sigkill_at_several_points_then_rerun_is_byte_identical(caption_corpus, uninterrupted_counts, tmp_path):
    out = tmp_path / "killed"
    total = caption_corpus["shards"]
    targets = kill_points("frequency", [(1, 3), (8, 14), (19, 24)])
    # (kill condition, workers): very early (starting up), then after k markers; one run uses a process pool.
    plan = [(after(early_delay("frequency")), 1)] + [
        ((lambda target=target: markers(out) >= target), workers)
        for target, workers in zip(targets, (1, 2, 1))]
    before: dict[str, int] = {}
    for ready, workers in plan:
        ended = kill_when(letitwag_command(*count_argv(caption_corpus, out, workers)), ready)
        assert ended == "killed", "the run finished before its kill point: make the corpus bigger"
        now = shard_files(out)
        assert {name: now[name] for name in before} == before, "a finished shard was rewritten"
        assert not any((out / name).exists() for name in FREQUENCY_OUTPUTS), "a killed run left an output"
        before = now
    finished = markers(out)
    assert targets[-1] <= finished < total

    result = run_cli(*count_argv(caption_corpus, out))
    assert result.returncode == 0, result.stderr[-3000:]
    execution = json.loads((out / "text.provenance.json").read_text())["execution"]
    assert execution["shards"] == total
    assert (execution["reused"], execution["computed"]) == (finished, total - finished)
    now = shard_files(out)
    assert {name: now[name] for name in before} == before, "a finished shard was rewritten by the last run"
    assert not list((out / "shards").glob(".*.tmp")), "temporary files of the killed runs were left behind"
    for name in FREQUENCY_OUTPUTS:
        assert (out / name).read_bytes() == uninterrupted_counts[name], name
