"""Disk full in each long stage: an injected ``OSError(ENOSPC)`` at a chosen write, and a real tiny tmpfs.

Proves, per stage and write: the run stops with exit code 2 and one ``letitwag <command>: error:``
line naming the disk-full cause (no traceback); nothing is presented as complete (no final output,
no completion record without its data); a rerun once there is space succeeds, reuses what was
finished before the failure and writes bytes identical to an uninterrupted run's.

Stages raise the ``OSError`` itself or a ``UserInputError`` of their own; ``letitwag.cli.main``
turns either into one line.
"""

from __future__ import annotations

import importlib
import json

import pytest
from fault_helpers import (
    EVAL_CHUNK,
    EVAL_SAMPLES,
    FREQUENCY_OUTPUTS,
    count_argv,
    curate_argv,
    curated_outputs,
    eval_argv,
    fail_on_call,
    feature_chunks,
    kill_points,
    mtimes,
    one_line_error,
    run_outputs,
    validation_chunks,
)

from letitwag.cli import main


def patch_writer(monkeypatch, module_name: str, name: str, call: int) -> None:
    """``module.name`` (a writer imported there) raises ENOSPC from its ``call``-th call on."""
    module = importlib.import_module(module_name)
    monkeypatch.setattr(module, name, fail_on_call(call, getattr(module, name)))


def run_out_of_space(argv: list[str], capsys) -> None:
    """Run the CLI in this process on a full disk: it must fail with exit 2 and one line naming the cause."""
    code = main(argv)
    assert code == 2
    line = one_line_error(capsys.readouterr().err, argv[0])
    assert "disk full" in line or "No space left" in line, line


# --- frequency counting -------------------------------------------------------------------------

FREQUENCY_WRITERS = {  # where the write happens: (module that imported the writer, its name there)
    "shard partial": ("letitwag.engine.store", "atomic_write_bytes"),
    "shard marker": ("letitwag.engine.store", "atomic_write_json"),
    "postings": ("letitwag.frequency.count", "atomic_path"),
    "table": ("letitwag.tables", "atomic_write_with"),
}


def finished_shards(out) -> list:
    markers = sorted((out / "shards").glob("*.done"))
    for marker in markers:  # every marker still vouches for a complete partial
        assert marker.with_name(marker.name.removesuffix(".done") + ".partial").is_file(), marker
    return markers


@pytest.mark.parametrize("where", list(FREQUENCY_WRITERS))
def test_frequency_disk_full(where, caption_corpus, uninterrupted_counts, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    call = kill_points(f"enospc-frequency-{where}", [(2, 20)])[0] if where.startswith("shard") else 1
    with monkeypatch.context() as patch:
        patch_writer(patch, *FREQUENCY_WRITERS[where], call)
        run_out_of_space(count_argv(caption_corpus, out), capsys)
    assert not (out / "text.parquet").exists()
    if (out / "text_postings.parquet").exists():  # written before the table failed: complete, not torn
        assert (out / "text_postings.parquet").read_bytes() == uninterrupted_counts["text_postings.parquet"]
    finished = finished_shards(out)
    assert len(finished) == (call - 1 if where.startswith("shard") else caption_corpus["shards"])

    assert main(count_argv(caption_corpus, out)) == 0
    assert json.loads((out / "text.provenance.json").read_text())["execution"]["reused"] == len(finished)
    for name in FREQUENCY_OUTPUTS:
        assert (out / name).read_bytes() == uninterrupted_counts[name], name


def test_frequency_on_a_full_tmpfs(caption_corpus, uninterrupted_counts, tiny_tmpfs, capsys):
    disk = tiny_tmpfs("96k")
    out = disk.path / "out"
    run_out_of_space(count_argv(caption_corpus, out), capsys)
    finished = finished_shards(out)
    assert 0 < len(finished) < caption_corpus["shards"], "the tmpfs size no longer lands mid-run"
    assert not any((out / name).exists() for name in FREQUENCY_OUTPUTS)
    stamps = mtimes(iter(finished))

    disk.grow("64m")
    assert main(count_argv(caption_corpus, out)) == 0
    assert json.loads((out / "text.provenance.json").read_text())["execution"]["reused"] == len(finished)
    assert mtimes(iter(finished)) == stamps
    for name in FREQUENCY_OUTPUTS:
        assert (out / name).read_bytes() == uninterrupted_counts[name], name


# --- curation -----------------------------------------------------------------------------------

CURATE_WRITERS = {  # (module, writer, range of the failing call)
    "validation chunk": ("letitwag.builders.curate.validate", "atomic_write_with", (2, 20)),
    "extracted image": ("letitwag.builders.curate.validate", "atomic_write_bytes", (2, 20)),
    "step record": ("letitwag.builders.curate.pipeline", "atomic_write_with", (1, 3)),
    "report": ("letitwag.builders.curate.report", "atomic_write_text", (1, 2)),
}


@pytest.mark.parametrize("where", list(CURATE_WRITERS))
def test_curate_disk_full(where, candidates_dir, uninterrupted_curation, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    module, writer, calls = CURATE_WRITERS[where]
    with monkeypatch.context() as patch:
        patch_writer(patch, module, writer, kill_points(f"enospc-curate-{where}", [calls])[0])
        run_out_of_space(curate_argv(candidates_dir, out), capsys)
    if where != "report":  # the manifest is written before the reports
        assert not (out / "curated.parquet").exists()
    chunks = mtimes(iter(validation_chunks(out)))

    assert main(curate_argv(candidates_dir, out)) == 0
    assert curated_outputs(out) == uninterrupted_curation
    now = mtimes(iter(validation_chunks(out)))
    assert {name: now[name] for name in chunks} == chunks, "a finished chunk was redone"


def test_curate_on_a_full_tmpfs(candidates_dir, uninterrupted_curation, tiny_tmpfs, capsys):
    disk = tiny_tmpfs("64k")
    out = disk.path  # as deep as the reference run's folder: the manifest records the candidates' relative path
    run_out_of_space(curate_argv(candidates_dir, out), capsys)
    assert not (out / "curated.parquet").exists()
    chunks = mtimes(iter(validation_chunks(out)))

    disk.grow("64m")
    assert main(curate_argv(candidates_dir, out)) == 0
    assert curated_outputs(out) == uninterrupted_curation
    now = mtimes(iter(validation_chunks(out)))
    assert {name: now[name] for name in chunks} == chunks, "a finished chunk was redone"


# --- evaluation ---------------------------------------------------------------------------------

EVAL_WRITERS = {  # call 1 of the cache's writer is the classifier; chunks follow
    "feature chunk": ("letitwag.harness.cache", "atomic_write_with", (3, 12)),
    "predictions": ("letitwag.harness.results", "atomic_write_with", (1, 1)),
    "results.json": ("letitwag.harness.results", "atomic_write_json", (1, 1)),
}


@pytest.fixture(scope="module")
def uninterrupted_run(tiny_clip, eval_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "fresh"
    assert main(eval_argv(tiny_clip, eval_dataset, out, None)) == 0
    return run_outputs(out)


def check_eval_rerun(argv, out, cache, uninterrupted, chunks_before: dict) -> None:
    assert not (out / "results.json").exists()
    assert main(argv) == 0
    assert run_outputs(out) == uninterrupted
    now = mtimes(iter(feature_chunks(cache)))
    assert {name: now[name] for name in chunks_before} == chunks_before, "a finished chunk was redone"
    features = json.loads((out / "results.json").read_text())["cache"]["image_features"]
    assert features["chunks_reused"] == len(chunks_before)


@pytest.mark.parametrize("where", list(EVAL_WRITERS))
def test_evaluate_disk_full(where, tiny_clip, eval_dataset, uninterrupted_run, tmp_path, capsys, monkeypatch,
                            one_torch_thread):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = eval_argv(tiny_clip, eval_dataset, out, cache)
    module, writer, calls = EVAL_WRITERS[where]
    with monkeypatch.context() as patch:
        patch_writer(patch, module, writer, kill_points(f"enospc-evaluate-{where}", [calls])[0])
        run_out_of_space(argv, capsys)
    assert not (out / "predictions.parquet").exists() or where == "results.json"
    check_eval_rerun(argv, out, cache, uninterrupted_run, mtimes(iter(feature_chunks(cache))))


def test_evaluate_on_a_full_tmpfs(tiny_clip, eval_dataset, uninterrupted_run, tiny_tmpfs, capsys, one_torch_thread):
    disk = tiny_tmpfs("24k")  # tmpfs holds whole pages: the classifier and a few chunks fit
    out, cache = disk.path / "out", disk.path / "cache"
    argv = eval_argv(tiny_clip, eval_dataset, out, cache)
    run_out_of_space(argv, capsys)
    chunks = mtimes(iter(feature_chunks(cache)))
    assert 0 < len(chunks) < EVAL_SAMPLES // EVAL_CHUNK, "the tmpfs size no longer lands mid-run"

    disk.grow("64m")
    check_eval_rerun(argv, out, cache, uninterrupted_run, chunks)
