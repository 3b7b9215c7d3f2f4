"""Each entry's long-tail slope: the analysis's per-concept regression, recomputed by the board, on the site."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from board_helpers import CLASS_NAMES, LABELS, predict
from letitwag.analysis.fits import regression_fit
from letitwag.harness.metrics import classification_metrics
from letitwag.leaderboard.board import Board
from letitwag.leaderboard.frequencies import concept_frequencies
from letitwag.leaderboard.site import build_site
from letitwag.leaderboard.validate import add_submission


def _expected(per_class: dict, frequencies: dict):
    concepts = sorted(c for c in frequencies if c in per_class)
    return regression_fit([frequencies[c] for c in concepts], [100 * per_class[c] for c in concepts], 1000, 0)


def test_every_classification_entry_shows_its_long_tail_slope(board_dir: Path, submission: Path,
                                                              tmp_path: Path) -> None:
    add_submission(submission, Board.open(board_dir))
    site = build_site(Board.open(board_dir), tmp_path / "site")
    rows = {row["name"]: row for row in csv.DictReader((site / "board.csv").open())}
    exported = {entry["name"]: entry for entry in json.loads((site / "board.json").read_text())["entries"]}

    # the verified entry: per-concept accuracies recomputed from its predictions, then the analysis's fit
    topk, _ = predict(LABELS, 1)
    per_class = classification_metrics(LABELS, topk, CLASS_NAMES, bootstrap_samples=0)["per_class_accuracy"]
    frequencies = concept_frequencies(CLASS_NAMES, "laion400m")
    assert len(frequencies) >= 3
    expected = _expected(per_class, frequencies)
    ours = rows["Synthetic ViT-S-32"]
    assert float(ours["long_tail_slope"]) == pytest.approx(expected.slope_per_decade, rel=1e-9)
    assert [float(ours["long_tail_slope_ci_low"]), float(ours["long_tail_slope_ci_high"])] == \
        pytest.approx(expected.slope_ci95, rel=1e-9)
    assert int(ours["long_tail_concepts"]) == len(frequencies)
    assert exported["Synthetic ViT-S-32"]["long_tail_slope"] == pytest.approx(expected.slope_per_decade, rel=1e-9)

    # a paper model: the same fit over its reported per-concept accuracies (on the board's concepts)
    paper = next(e for e in exported.values() if e["status"] == "reported")
    assert float(rows[paper["name"]]["long_tail_slope"]) == pytest.approx(
        _expected(paper["per_class_accuracy"], frequencies).slope_per_decade, rel=1e-9)
    assert all(row["long_tail_slope"] for row in rows.values())

    index = (site / "index.html").read_text()
    assert "Long-tail slope</button>" in index and f'{expected.slope_per_decade:+.1f}' in index
    page = (site / exported["Synthetic ViT-S-32"]["page"]).read_text()
    assert 'id="long-tail"' in page and "accuracy points per decade of pretraining frequency" in page
    assert f"long-tail slope: {expected.slope_per_decade:.1f} points per decade" in page  # the plotted line
