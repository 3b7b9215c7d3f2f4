"""Curation end to end on planted faults: every rejection recorded, conversions, report, determinism."""

import json
import subprocess
import sys

import pyarrow.parquet as pq
from PIL import Image

from letitwag.builders.curate import CurateConfig, curate
from letitwag.builders.manifest import read_curated
from letitwag.cli import main


def _fates(out_dir):
    table = pq.read_table(out_dir / "curated.parquet").to_pandas()
    return table, dict(zip(table["candidate_id"], table["rejected_by"]))


def test_every_fault_is_a_recorded_rejection_and_conversions_give_rgb(faulty_candidates, tmp_path):
    candidates, expected = faulty_candidates
    out = tmp_path / "curated"
    report = curate(candidates, out, CurateConfig(balance=False, workers=1, chunk_size=7))
    table, fates = _fates(out)
    assert {k: (v if isinstance(v, str) else None) for k, v in fates.items()} == expected
    reasons = dict(zip(table["candidate_id"], table["reason"]))
    assert reasons["dog/truncated"].startswith("decode failed")
    assert reasons["dog/empty"] == "empty file (0 bytes)"
    assert reasons["dog/text"].startswith("not an image")
    assert reasons["dog/bomb"].startswith("decompression bomb refused: 12000x12000 = 144000000 pixels > 64000000")
    assert reasons["dog/tiny"] == "too small: 20x20 < min side 64"
    assert "near duplicate of dog/0" in reasons["dog/resized"]
    assert reasons["dog/copy"] == "exact duplicate (bytes) of dog/1"
    assert "ambiguous label" in reasons["cat/shared"] and "ambiguous label" in reasons["dog/2"]
    curated = read_curated(out)
    for candidate_id in ("cat/cmyk", "cat/palette", "cat/16bit", "cat/alpha", "cat/rotated", "dog/1"):
        row = table[table["candidate_id"] == candidate_id].iloc[0]
        with Image.open(curated.resolve_path(row["image"]["path"])) as image:
            assert image.mode == "RGB"
            assert image.size == (row["width"], row["height"])
    rotated = table[table["candidate_id"] == "cat/rotated"].iloc[0]
    assert (rotated["width"], rotated["height"]) == (120, 160)
    assert table["label"].tolist() == sorted(table["label"].tolist())
    assert report["totals"] == {"candidates": 27, "kept": 18, "concepts": 2, "concepts_kept": 2}
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["validate"]["rejected"] == 5 and steps["near_dedup"]["settings"]["max_hamming_distance"] == 10
    assert steps["near_dedup"]["examples"][0]["thumbnail"].startswith("report/thumbs/")
    assert (out / steps["near_dedup"]["examples"][0]["thumbnail"]).exists()
    assert "| near_dedup | True |" in (out / "report.md").read_text()
    assert "<figure>" in (out / "report.html").read_text()


def test_same_inputs_and_seed_give_byte_identical_output(faulty_candidates, tmp_path):
    candidates, _ = faulty_candidates
    config = CurateConfig(per_class=4, workers=1, chunk_size=5)
    curate(candidates, tmp_path / "a", config)
    curate(candidates, tmp_path / "b", CurateConfig(per_class=4, workers=2, chunk_size=9))
    for name in ("curated.parquet", "report.json", "report.md", "report.html", "curated.provenance.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    table, fates = _fates(tmp_path / "a")
    assert (table["kept"].groupby(table["concept_id"]).sum() == 4).all()
    curate(candidates, tmp_path / "c", CurateConfig(per_class=4, seed=1, workers=1))
    other, _ = _fates(tmp_path / "c")
    assert set(other[other["kept"]]["candidate_id"]) != set(table[table["kept"]]["candidate_id"])


def test_short_classes_are_dropped_or_kept_as_asked(faulty_candidates, tmp_path):
    candidates, _ = faulty_candidates
    curate(candidates, tmp_path / "drop", CurateConfig(per_class=9, workers=1))
    table, _ = _fates(tmp_path / "drop")
    assert set(table[table["kept"]]["concept_id"]) == {"cat"}  # dog has 7 left, cat 11
    assert table[table["concept_id"] == "dog"]["reason"].str.contains("only 7 images").sum() == 7
    curate(candidates, tmp_path / "keep",
           CurateConfig(per_class=9, drop_short_classes=False, workers=1))
    table, _ = _fates(tmp_path / "keep")
    assert table["kept"].sum() == 9 + 7  # cat balanced to 9, dog keeps its 7


def test_rerun_with_a_changed_threshold_reuses_validation(faulty_candidates, tmp_path, caplog):
    candidates, _ = faulty_candidates
    out = tmp_path / "out"
    curate(candidates, out, CurateConfig(balance=False, workers=1, chunk_size=4))
    chunks = sorted((out / "_work").glob("validate-*/chunk-*.parquet"))
    stamps = [c.stat().st_mtime_ns for c in chunks]
    caplog.set_level("INFO")
    curate(candidates, out, CurateConfig(balance=False, workers=1, chunk_size=4, near_distance=0))
    assert [c.stat().st_mtime_ns for c in chunks] == stamps
    assert "resumed" in caplog.text
    table, fates = _fates(out)
    assert fates["dog/resized"] != "near_dedup"  # distance 2 > 0 now


def test_concept_list_sets_labels_and_unknown_concepts_are_rejected(faulty_candidates, tmp_path):
    candidates, _ = faulty_candidates
    (tmp_path / "concepts.txt").write_text("cat\n")
    curate(candidates, tmp_path / "out", CurateConfig(balance=False, workers=1, concepts=str(tmp_path / "concepts.txt")))
    table, fates = _fates(tmp_path / "out")
    dogs = table[table["concept_id"] == "dog"]
    assert (dogs["rejected_by"] == "validate").all()
    assert dogs["reason"].str.contains("not in the concept list").sum() >= 8
    assert set(table[table["concept_id"] == "cat"]["label"]) == {0}


def test_cli_curate_and_one_line_errors(faulty_candidates, tmp_path, capsys):
    candidates, _ = faulty_candidates
    assert main(["curate", str(candidates), "--out", str(tmp_path / "o"), "--per-class", "3", "--workers", "1"]) == 0
    assert "-> 6 images in 2 concepts" in capsys.readouterr().out
    assert main(["curate", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2")]) == 2
    assert "no candidates.parquet here" in capsys.readouterr().err
    assert main(["curate", str(candidates), "--out", str(tmp_path / "o3"), "--outliers"]) == 2
    assert "need an embedding model" in capsys.readouterr().err


def test_balancing_that_drops_every_concept_says_so_once_on_stderr_and_in_the_report(faulty_candidates, tmp_path):
    candidates, _ = faulty_candidates
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "letitwag", "curate", str(candidates), "--out", str(out),
                             "--per-class", "50", "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, result.stderr
    assert "dropped every concept: all 2 have fewer than --per-class 50" in warnings[0]
    assert "the largest, 'cat', has 11" in warnings[0] and "--keep-short-classes" in warnings[0]
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["kept"] == 0 and len(report["warnings"]) == 1
    assert report["warnings"][0] in warnings[0]
    assert "--keep-short-classes" in (out / "report.md").read_text()
    assert "--keep-short-classes" in (out / "report.html").read_text()
    kept = curate(candidates, tmp_path / "kept", CurateConfig(per_class=9, workers=1))
    assert kept["warnings"] == []  # cat has enough: nothing to warn about
