"""`letitwag demo --quick`: every step of the embedded demo for real, end to end, offline.

One run of the CLI (in-process; the kNN backend is a real child process on 127.0.0.1) is
checked against the files each step wrote: the printed paths exist, the mined concepts are
the rarest non-zero ones of the bundled table, curation caught each planted problem, the
published folder loads with `datasets.load_dataset`, both evaluation runs are marked as
random-weight plumbing runs, and the leaderboard lists the demo run as an unranked plumbing
entry (its top-1 recomputed from its predictions) beside the paper's 40 models.
The models are tiny RANDOM-WEIGHT models: no assertion is made on their scores.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from letitwag.cli import main

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run `letitwag demo --quick` once into a folder that already holds stale and foreign files."""
    out = tmp_path_factory.mktemp("demo") / "out"
    (out / "3-build").mkdir(parents=True)
    (out / "3-build" / "stale-from-an-earlier-run.txt").write_text("old")
    (out / "my-notes.txt").write_text("not the demo's")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["--log-level", "WARNING", "demo", "--out", str(out), "--quick"])
    summary = json.loads((out / "demo-summary.json").read_text())
    return {"out": out, "code": code, "stdout": printed.getvalue(), "steps": {s["number"]: s for s in summary["steps"]}}


def test_every_step_ran_and_every_printed_output_exists(demo):
    assert demo["code"] == 0
    assert sorted(demo["steps"]) == [1, 2, 3, 4, 5]
    for step in demo["steps"].values():
        assert step["seconds"] > 0
        assert f"[{step['number']}] {step['title']}" in demo["stdout"]
        for path in step["outputs"].values():
            assert Path(path).exists(), path
            assert path in demo["stdout"]


def test_rerun_replaces_only_the_demo_step_folders(demo):
    out = demo["out"]
    assert not (out / "3-build" / "stale-from-an-earlier-run.txt").exists()
    assert (out / "my-notes.txt").read_text() == "not the demo's"


def test_analysis_reports_the_paper_fits(demo):
    step = demo["steps"][1]
    analysis = json.loads((Path(step["outputs"]["report"]).parent / "analysis.json").read_text())
    assert len(analysis["fits"]) == step["facts"]["fits"] > 0
    assert analysis["parameters"]["bootstrap"] == step["facts"]["bootstrap"]
    assert "bootstrap 50, figures off" in demo["stdout"]  # --quick is said in the output
    assert demo["stdout"].count("wall time: ") == 2  # stage times of the build and the evaluations


def test_mine_prints_the_rarest_nonzero_concepts_with_their_counts(demo):
    from letitwag.tables import FrequencyTable

    step = demo["steps"][2]
    counts = FrequencyTable.read("paper:laion400m").counts()
    expected = sorted(((count, concept) for concept, count in counts.items() if count > 0))[: len(step["facts"]["rarest"])]
    assert [(c, n) for n, c in expected] == [tuple(pair) for pair in step["facts"]["rarest"]]
    for concept, count in step["facts"]["rarest"]:
        assert re.search(rf"^\s+{count}\s+{re.escape(concept)}$", demo["stdout"], re.MULTILINE)


def test_mini_build_curates_the_planted_problems_and_loads_back(demo):
    import datasets

    step = demo["steps"][3]
    out = Path(step["outputs"]["HF dataset"]).parent
    planted = json.loads((out / "images" / "planted.json").read_text())
    curated = pq.read_table(out / "curated" / "curated.parquet").to_pylist()
    rejected_by = {Path(row["image"]["path"]).name: row["rejected_by"] for row in curated if row["source"] == "folder"}
    assert rejected_by[Path(planted["corrupt"][0]).name] == "validate"
    assert rejected_by[Path(planted["too_small"][0]).name] == "validate"
    assert rejected_by[Path(planted["exact_duplicate"][0]).name] == "exact_dedup"
    assert rejected_by[Path(planted["near_duplicate"][0]).name] == "near_dedup"
    candidates = pq.read_table(Path(step["outputs"]["candidates"]) / "candidates.parquet")
    assert set(candidates["source"].to_pylist()) == {"folder", "knn"}
    loaded = datasets.load_dataset(step["outputs"]["HF dataset"])["test"]
    assert loaded.num_rows == step["facts"]["kept"] == step["facts"]["published"]["num_examples"]
    assert loaded.features["label"].names == step["facts"]["concepts"]
    assert f"test: {loaded.num_rows} rows, {len(step['facts']['concepts'])} classes" in demo["stdout"]


def test_knn_backend_was_stopped(demo):
    port = int(demo["steps"][3]["facts"]["knn_url"].rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_evaluations_are_labelled_plumbing_runs(demo):
    step = demo["steps"][4]
    assert "PLUMBING RUN WITH RANDOM WEIGHTS" in demo["stdout"]
    published = demo["steps"][3]["facts"]["published"]["num_examples"]
    classification = json.loads(Path(step["outputs"]["classification run"]).read_text())
    assert classification["model"]["random_weights"] is True and classification["task"] == "classification"
    predictions = pq.read_table(Path(step["outputs"]["classification run"]).parent / "predictions.parquet")
    assert predictions.num_rows == published
    t2i = json.loads(Path(step["outputs"]["t2i run"]).read_text())
    assert t2i["task"] == "t2i" and t2i["model"]["random_weights"] is True
    generated = pq.read_table(Path(step["outputs"]["t2i run"]).parent / "predictions.parquet")
    assert generated.num_rows >= len(demo["steps"][3]["facts"]["concepts"])


def test_leaderboard_shows_the_paper_models_and_the_demo_run_as_an_unranked_plumbing_entry(demo):
    from letitwag.data import read_bundled_table
    from letitwag.demo.leaderboard_step import DEMO_SUBMISSION

    step = demo["steps"][5]
    site = Path(step["outputs"]["site"])
    assert step["facts"]["entries_on_site"] == 41
    rows = list(csv.DictReader((site.parent / "board.csv").open(encoding="utf-8")))
    assert len(rows) == step["facts"]["entries_on_site"] == 41
    reported = [r for r in rows if r["status"] == "reported"]
    assert len(reported) == 40 and all(r["plumbing"] == "False" and r["rank"] for r in reported)
    (plumbing,) = [r for r in rows if r["plumbing"] == "True"]
    assert plumbing["name"] == DEMO_SUBMISSION["model_name"]
    assert plumbing["rank"] == "" and plumbing["ranked"] == "False" and plumbing["status"] == "verified"

    # the top-1 the board shows is the one that follows from the stored predictions and the board's labels
    board = Path(step["outputs"]["demo board"])
    (entry,) = [path.parent for path in board.glob("submissions/*/*/*/verification.json")]
    predictions = pq.read_table(entry / "predictions.parquet").to_pydict()
    labels = pq.read_table(board / "labels.parquet").to_pydict()
    board_labels = dict(zip(labels["sample_index"], labels["label"]))
    hits = [ids[0] == board_labels[i] for i, ids in zip(predictions["sample_index"], predictions["topk_ids"])]
    top1 = sum(hits) / len(hits)
    assert float(plumbing["top1"]) == pytest.approx(top1, abs=1e-9)
    assert json.loads((entry / "verification.json").read_text())["plumbing"] is True

    index = site.read_text(encoding="utf-8")
    section = index[index.index('<section id="plumbing">'):]
    section = section[:section.index("</section>")]
    assert "Plumbing runs — random weights, numbers meaningless" in section
    assert DEMO_SUBMISSION["model_name"] in section and "plumbing run (random weights)" in section
    assert f"{top1 * 100:.2f}" in section and "not ranked" in section
    ranked_table = index[index.index('<table id="board"'):index.index("</table>")]
    assert DEMO_SUBMISSION["model_name"] not in ranked_table
    scatter = index[index.index('<section id="scatter">'):index.index('<section id="plumbing">')]
    assert DEMO_SUBMISSION["model_name"] not in scatter
    paper = read_bundled_table("let_it_wag_40_models.parquet").to_pylist()
    for model in paper:
        assert f"{model['backbone']} ({model['pretraining']})" in ranked_table


def test_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert main(["demo", "--out", str(target)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"letitwag demo: error: --out {target}: is a file; give a folder for the demo outputs"]
