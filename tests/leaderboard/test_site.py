"""The static site: seeded paper models, verified entries, escaping, downloads, figures."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from board_helpers import metadata_document, write_submission
from letitwag.cli import main
from letitwag.data import read_bundled_table
from letitwag.leaderboard.board import Board
from letitwag.leaderboard.site import build_site
from letitwag.leaderboard.validate import add_submission

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def paper_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paper") / "site"
    assert main(["leaderboard", "build", "--out", str(out)]) == 0
    return out


def plant_hostile_entry(board_dir: Path, submission: Path) -> Path:
    """Add a valid entry, then edit its stored name by hand (a tampered board repo): the site must still escape it."""
    _, stored = add_submission(submission, Board.open(board_dir))
    meta = json.loads((stored / "submission.json").read_text())
    meta.update(model_name=HOSTILE, link="javascript:alert(2)", pretraining_data="<img src=x onerror=alert(3)>")
    (stored / "submission.json").write_text(json.dumps(meta))
    return stored


def test_paper_board_has_forty_reported_models(paper_site: Path) -> None:
    index = (paper_site / "index.html").read_text()
    rows = re.findall(r"<tr data-text=", index)
    assert len(rows) == 40
    assert index.count("reported in the paper</span>") == 40 + 1  # + the legend
    exported = json.loads((paper_site / "board.json").read_text())
    paper = {r["model_key"]: r for r in read_bundled_table("let_it_wag_40_models.parquet").to_pylist()}
    assert len(exported["entries"]) == 40
    first = exported["entries"][0]
    assert first["rank"] == 1 and first["status"] == "reported"
    assert first["top5"] is None and first["top1_ci_low"] is None  # unknown, not invented
    assert first["top1"] == pytest.approx(max(r["let_it_wag_top1"] for r in paper.values()) / 100)
    assert len(first["per_class_accuracy"]) == 290


def test_scatter_shows_the_papers_fitted_slopes(paper_site: Path) -> None:
    index = (paper_site / "index.html").read_text()
    assert "slope 0.60 for ImageNet below 50%" in index and "slope 1.58 for ImageNet above 50%" in index
    assert index.count('class="point reported"') == 40


def test_model_page_lists_every_concept_and_the_frequency_plot(paper_site: Path) -> None:
    pages = sorted((paper_site / "models").glob("*.html"))
    assert len(pages) == 40
    page = (paper_site / "models" / "paper-backbonevit-b-32_pretrainedlaion2b.html").read_text()
    assert page.count('class="point concept"') == 289  # one class has no paper frequency
    body = page.split('<table class="sortable" id="concepts">')[1]
    assert body.count("<tr>") == 290 + 1
    assert "Harriss Hawk" in body


def test_site_needs_no_network(paper_site: Path) -> None:
    for page in [paper_site / "index.html", paper_site / "submit.html", *(paper_site / "models").glob("*.html")]:
        html = page.read_text()
        assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', html), page
    assert "t2i-empty" in (paper_site / "index.html").read_text()


def test_csv_download_matches_json(paper_site: Path) -> None:
    rows = list(csv.DictReader((paper_site / "board.csv").open()))
    exported = json.loads((paper_site / "board.json").read_text())["entries"]
    assert [r["name"] for r in rows] == [e["name"] for e in exported]
    assert float(rows[0]["top1"]) == pytest.approx(exported[0]["top1"])


def test_verified_and_hostile_entries_render_as_text(board_dir: Path, submission: Path, tmp_path: Path) -> None:
    plant_hostile_entry(board_dir, submission)
    honest = write_submission(tmp_path / "honest", seed=3, revision="r2",
                              metadata=metadata_document(model_name="Honest model"))
    add_submission(honest, Board.open(board_dir))
    out = build_site(Board.open(board_dir), tmp_path / "site")
    index = (out / "index.html").read_text()
    assert HOSTILE not in index and "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "<img src=x" not in index
    assert index.count("verified</span>") >= 2
    hostile_page = next(p for p in (out / "models").glob("sub-*.html") if "&lt;script&gt;" in p.read_text())
    text = hostile_page.read_text()
    assert HOSTILE not in text and 'href="javascript:' not in text
    exported = json.loads((out / "board.json").read_text())
    verified = [e for e in exported["entries"] if e["status"] == "verified"]
    assert len(verified) == 2 and all(e["top1_ci_low"] is not None for e in verified)


def test_csv_cells_cannot_become_formulas(board_dir: Path, submission: Path, tmp_path: Path) -> None:
    _, stored = add_submission(submission, Board.open(board_dir))
    meta = json.loads((stored / "submission.json").read_text())
    meta["model_name"] = "=HYPERLINK(1)"
    (stored / "submission.json").write_text(json.dumps(meta))
    out = build_site(Board.open(board_dir), tmp_path / "site")
    names = [r["name"] for r in csv.DictReader((out / "board.csv").open())]
    assert "'=HYPERLINK(1)" in names


def test_rebuild_replaces_the_site(tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(Board.paper_only(), out)
    (out / "stale.html").write_text("old")
    build_site(Board.paper_only(), out)
    assert not (out / "stale.html").exists() and (out / "index.html").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_pre_rendered_fragments_escape_concept_names() -> None:
    from letitwag.leaderboard.concept_table import ConceptRows
    from letitwag.leaderboard.figures import FrequencyPlot
    from letitwag.leaderboard.long_tail import LongTailFit

    names = {"a": HOSTILE, "b": 'x" onload="y'}
    rows = ConceptRows(["a", "b"], names, {"a": 3}).render({"a": 0.5})
    assert HOSTILE not in rows and "&lt;script&gt;" in rows and 'x" onload' not in rows
    assert '<td data-v="">—</td>' in rows and "50.00" in rows  # unknown frequency, known accuracy
    figure = FrequencyPlot({"a": 3, "b": 1000}, names).figure({"a": 0.5, "b": 0.9}, LongTailFit(13.3, None, 42.0, 2))
    assert HOSTILE not in figure.points_markup and figure.points_markup.count("<circle") == 2
    assert figure.lines and figure.lines[0]["kind"] == "fit" and "13.3 points per decade" in figure.lines[0]["title"]


def test_tampered_stored_entry_stops_the_build_with_one_line(board_dir: Path, submission: Path, tmp_path: Path) -> None:
    from letitwag.leaderboard.board import BoardError

    _, stored = add_submission(submission, Board.open(board_dir))
    text = (stored / "results.json").read_text()
    (stored / "results.json").write_text(text.replace('"top1": ', '"top1": NaN, "was": ', 1))
    with pytest.raises(BoardError, match="stored entry is unreadable") as caught:
        build_site(Board.open(board_dir), tmp_path / "site")
    assert str(stored) in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "site").exists()


def test_scatter_fits_agree_with_the_analysis_package() -> None:
    from letitwag.analysis.fits import segmented_lines
    from letitwag.leaderboard.entries import paper_entries
    from letitwag.leaderboard.figures import paper_fits

    paper = paper_entries()
    x, y = [e.imagenet_top1 for e in paper], [e.metrics["top1"] * 100 for e in paper]
    ours = {fit["name"]: fit for fit in paper_fits(x, y)}
    reference = segmented_lines(x, y, 50.0)
    for side in ("below", "above"):
        assert ours[side]["slope"] == pytest.approx(reference[side]["slope"], rel=1e-9)
        assert ours[side]["intercept"] == pytest.approx(reference[side]["intercept"], rel=1e-9)
    assert round(ours["below"]["slope"], 2) == 0.60 and round(ours["above"]["slope"], 2) == 1.58
