"""``letitwag curate`` killed with SIGKILL at several seeded points, rerun after each kill.

Curation's completion records are the validation chunk files (``_work/validate-<fp>/chunk-N.parquet``,
one per ``--chunk-size`` images, written atomically after the images they point at) and one record
per later step (``_work/steps/NN-<step>-<fp>.parquet``). Proves: a killed run leaves no curated
manifest or report; reruns never rewrite a finished chunk; the final curated manifest, reports
and extracted images are byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import pyarrow.parquet as pq

from fault_helpers import (CURATE_CHUNK, CURATE_IMAGES, after, curate_argv, curated_outputs, early_delay, kill_points,
                      kill_when, leftover_temporaries, letitwag_command, mtimes, run_cli, validation_chunks)

OUTPUTS = ("curated.parquet", "report.json", "report.md", "report.html")


def test_sigkill_at_several_points_then_rerun_is_byte_identical(candidates_dir, uninterrupted_curation, tmp_path):
    out = tmp_path / "killed"
    total = -(-CURATE_IMAGES // CURATE_CHUNK)
    targets = kill_points("curate", [(1, 3), (12, 20), (28, 36)])
    plan = [after(early_delay("curate"))] + [lambda target=target: len(validation_chunks(out)) >= target
                                               for target in targets]
    before: dict[str, int] = {}
    for ready in plan:
        ended = kill_when(letitwag_command(*curate_argv(candidates_dir, out)), ready)
        assert ended == "killed", "the run finished before its kill point: give it more images"
        now = mtimes(iter(validation_chunks(out)))
        assert {name: now[name] for name in before} == before, "a finished chunk was rewritten"
        assert not any((out / name).exists() for name in OUTPUTS), "a killed run left an output"
        before = now
    assert targets[-1] <= len(before) < total

    result = run_cli(*curate_argv(candidates_dir, out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"validate: resumed, {len(before)} finished chunk(s) reused" in result.stderr
    now = mtimes(iter(validation_chunks(out)))
    assert len(now) == total
    assert {name: now[name] for name in before} == before, "a finished chunk was rewritten by the last run"
    assert curated_outputs(out) == uninterrupted_curation
    # A kill during an atomic write leaves its hidden temporary file (curation does not sweep them, unlike
    # the shard store): never referenced by the manifest, so never presented as a finished image.
    referenced = {row["path"] for row in pq.read_table(out / "curated.parquet").column("image").to_pylist()}
    assert not referenced & set(leftover_temporaries(out))

    # Once everything is finished, a rerun recomputes nothing: every step record is reused.
    steps = mtimes((out / "_work" / "steps").glob("*.parquet"))
    again = run_cli(*curate_argv(candidates_dir, out))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"validate: resumed, {total} finished chunk(s) reused" in again.stderr
    assert again.stderr.count("reused finished record") == len(steps) > 0
    assert mtimes((out / "_work" / "steps").glob("*.parquet")) == steps
    assert curated_outputs(out) == uninterrupted_curation
