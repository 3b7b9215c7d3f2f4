"""Text-to-image submissions through the board: real harness runs validated, added, built; tampering rejected.

The runs are real ``letitwag evaluate --task t2i`` runs with the harness's deterministic
``python:`` fakes (tests/harness/test_t2i_fakes.py: a generator painting flat colours, a judge
reading the mean colour), on a 3-concept, 6-image dataset. A classification run of the same
judge on the same dataset defines the board. The fakes are plumbing, not models: their
``random_weights`` is false because they have no weights at all, and their names say "plumbing".
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from board_helpers import edit_results, set_field
from letitwag.cli import main
from letitwag.leaderboard.board import Board, init_from_reference
from letitwag.leaderboard.site import build_site
from letitwag.leaderboard.submission import SubmissionRejected
from letitwag.leaderboard.validate import add_submission, validate_submission, verify_board

sys.path.insert(0, str(Path(__file__).parents[1] / "harness"))  # the harness's fakes and dataset helpers

GENERATOR = "python:test_t2i_fakes:colour_generator"
JUDGE = "python:test_t2i_fakes:colour_judge"


def _metadata(name: str) -> dict:
    return {"format": "letitwag.submission/1", "model_name": name, "link": "https://example.org/colours",
            "parameters": None, "pretraining_data": "none (flat-colour plumbing fake)",
            "includes_let_it_wag_images": False, "license": "MIT"}


def _t2i_run(dataset: Path, out: Path, *extra: str) -> None:
    assert main(["evaluate", "--task", "t2i", "--model", GENERATOR, "--judge", JUDGE, "--judge-prompts", "simple",
                 "--dataset", str(dataset), "--out", str(out), "--no-cache", "--workers", "0",
                 "--bootstrap-samples", "30", "--images-per-prompt", "2", *extra]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A board defined by a classification run, and three t2i submissions (two judges' worth)."""
    from test_t2i_fakes import write_colour_dataset

    root = tmp_path_factory.mktemp("t2i_board")
    dataset = write_colour_dataset(root / "colours")
    assert main(["evaluate", "--model", JUDGE, "--dataset", str(dataset), "--out", str(root / "reference"),
                 "--no-cache", "--workers", "0", "--bootstrap-samples", "30", "--prompts", "simple"]) == 0
    init_from_reference(root / "board", root / "reference")
    prompt_file = root / "red_frog.json"  # green tree frogs painted red: the judge gets them wrong
    prompt_file.write_text(json.dumps({"green_tree_frog": ["a red frog", "a red frog on a leaf"]}))
    runs = {"retrieval": ("--retrieval-judge", JUDGE),
            "red_frog": ("--retrieval-judge", JUDGE, "--seed", "1", "--prompt-file", str(prompt_file)),
            "plain": ()}
    names = {"retrieval": "Colour plumbing A", "red_frog": "Colour plumbing B", "plain": "Colour plumbing A"}
    for name, extra in runs.items():
        _t2i_run(dataset, root / "runs" / name, *extra)
        folder = root / "submissions" / name
        folder.mkdir(parents=True)
        for file in ("results.json", "predictions.parquet"):
            shutil.copyfile(root / "runs" / name / file, folder / file)
        (folder / "submission.json").write_text(json.dumps(_metadata(names[name])))
    return root


@pytest.fixture
def board(runs: Path, tmp_path: Path) -> Board:
    return Board.open(shutil.copytree(runs / "board", tmp_path / "board"))


@pytest.fixture
def t2i_submission(runs: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(runs / "submissions" / "retrieval", tmp_path / "submission"))


def _cell_values(html: str, table_id: str) -> list[list[str]]:
    body = html[html.index(f'id="{table_id}"'):]
    body = body[body.index("<tbody>"):body.index("</tbody>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_t2i_runs_validate_add_and_build(runs: Path, board: Board, tmp_path: Path) -> None:
    stored = {}
    for name in ("retrieval", "red_frog", "plain"):
        validated, stored[name] = add_submission(runs / "submissions" / name, board)
        results = json.loads((runs / "runs" / name / "results.json").read_text())
        assert validated.key.task == "t2i" and validated.results["metrics"] == results["metrics"]
    # the same generator under another judge (no retrieval judge) is a separate entry, not a duplicate
    assert stored["retrieval"].parent == stored["plain"].parent and stored["retrieval"] != stored["plain"]
    assert [problem for _, problem in verify_board(board)] == [None, None, None]

    site = build_site(board, tmp_path / "site")
    index = (site / "index.html").read_text()
    assert "t2i-empty" not in index and "Colour plumbing" not in index[:index.index('id="t2i"')]
    judges = re.findall(r'<h3 class="judge" id="judge-\d">Judge: <code>(.*?)</code></h3>', index)
    assert judges == [f"{JUDGE} (judge prompts: simple)", f"{JUDGE} (judge prompts: simple); retrieval: {JUDGE}"]
    plain_rows, retrieval_rows = _cell_values(index, "t2i-board-1"), _cell_values(index, "t2i-board-2")
    assert len(plain_rows) == 1 and len(retrieval_rows) == 2
    metrics = {name: json.loads((runs / "runs" / name / "results.json").read_text())["metrics"]
               for name in ("retrieval", "red_frog")}
    by_rank = sorted(metrics.values(), key=lambda m: -m["judge_top1"])
    for rank, (row, m) in enumerate(zip(retrieval_rows, by_rank), start=1):
        assert row[0] == str(rank)
        assert row[3].startswith(f"{m['judge_top1'] * 100:.2f}")
        assert row[6] == f"{m['expected_clip_score']:.2f}" and row[7] == f"{m['max_clip_score']:.2f}"
        assert row[8] == f"{m['retrieval_cmc@1'] * 100:.2f}"
    assert by_rank[0]["judge_top1"] > by_rank[1]["judge_top1"]
    assert "unknown" in plain_rows[0][8]  # no retrieval judge: CMC unknown, not zero

    page = re.search(r'href="(models/sub-[^"]+)">Colour plumbing B', index).group(1)
    model_page = (site / page).read_text()
    assert f"<code>{JUDGE} (judge prompts: simple); retrieval: {JUDGE}</code>" in model_page
    assert "Judge top-1" in model_page and "per-image predictions" in model_page

    rows = list(csv.DictReader((site / "t2i.csv").open(encoding="utf-8")))
    assert sorted(r["name"] for r in rows) == ["Colour plumbing A", "Colour plumbing A", "Colour plumbing B"]
    assert {r["judge"] for r in rows} == set(judges)
    exported = json.loads((site / "board.json").read_text())
    assert len(exported["t2i_entries"]) == 3 and all(e["name"].startswith("paper") is False for e in exported["t2i_entries"])
    assert all(e["status"] == "reported" for e in exported["entries"])  # classification table: paper models only


def test_t2i_tables_sort_in_a_real_browser(runs: Path, board: Board, tmp_path: Path) -> None:
    """Each judge's table sorts by its own columns in Chromium (the same board.js as the main table)."""
    import subprocess

    from test_browser import BROWSER_DIR, _require_browser

    node = _require_browser()
    for name in ("retrieval", "red_frog", "plain"):
        add_submission(runs / "submissions" / name, board)
    site = build_site(board, tmp_path / "site")
    run = subprocess.run([node, str(BROWSER_DIR / "check_t2i.mjs"), (site / "index.html").as_uri()],
                         capture_output=True, text=True, timeout=180, cwd=BROWSER_DIR)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["consoleErrors"] == []
    assert [t["judge"] for t in seen["tables"]] == [f"{JUDGE} (judge prompts: simple)",
                                                    f"{JUDGE} (judge prompts: simple); retrieval: {JUDGE}"]
    retrieval = seen["tables"][1]
    assert retrieval["initialRanks"] == ["1", "2"]
    first = [float(v) for v in retrieval["clipAfterOneClick"]]
    assert retrieval["clipState"] == "descending" and first == sorted(first, reverse=True) and first[0] > first[1]
    assert [float(v) for v in retrieval["clipAfterTwoClicks"]] == sorted(first)
    assert retrieval["namesAfterModelClick"] == ["Colour plumbing A", "Colour plumbing B"]


def test_duplicate_t2i_submission_rejected(t2i_submission: Path, board: Board) -> None:
    add_submission(t2i_submission, board)
    with pytest.raises(SubmissionRejected, match=r"^duplicate submission: .*t2i judged by"):
        validate_submission(t2i_submission, board)


def test_pull_request_text_names_the_judge(t2i_submission: Path, board: Board) -> None:
    from letitwag.leaderboard.submit import describe

    title, body = describe(validate_submission(t2i_submission, board))
    assert title.startswith("Add Colour plumbing A") and f"t2i judged by {JUDGE}" in title
    assert "- judge top-1: 0.6667" in body and "- expected CLIPScore:" in body


def edit_rows(edit: Callable[[list[dict]], list[dict]]) -> Callable[[Path], None]:
    """Rewrite predictions.parquet (same schema) from edited row dicts."""
    def apply(folder: Path) -> None:
        table = pq.read_table(folder / "predictions.parquet")
        rows = edit(table.to_pylist())
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), folder / "predictions.parquet")
    return apply


def _row(index: int, **changes) -> Callable[[list[dict]], list[dict]]:
    def edit(rows: list[dict]) -> list[dict]:
        rows[index].update(changes)
        return rows
    return edit


def _rename_prompt(rows: list[dict]) -> list[dict]:
    """Another prompt for concept 0, its seeds recomputed (so only the prompt hash can catch it)."""
    from letitwag.harness.t2i.generation import image_seed

    for row in rows:
        if row["concept_index"] == 0:
            row["prompt"] = "a different prompt"
            row["seed"] = image_seed(0, row["concept_id"], row["prompt"], row["image_index"])
    return rows


def _drop_column(folder: Path) -> None:
    pq.write_table(pq.read_table(folder / "predictions.parquet").drop_columns(["clip_score"]),
                   folder / "predictions.parquet")


def _nan_metric(folder: Path) -> None:
    text = (folder / "results.json").read_text()
    value = json.loads(text)["metrics"]["max_clip_score"]
    (folder / "results.json").write_text(text.replace(f'"max_clip_score": {json.dumps(value)}', '"max_clip_score": NaN'))


TAMPERED = {
    "changed judge_top1": (edit_results(lambda r: r["metrics"].update(judge_top1=r["metrics"]["judge_top1"] - 0.1)),
                           r"metric metrics\.judge_top1 claims .* but the predictions give"),
    "changed expected CLIPScore": (edit_results(lambda r: r["metrics"].update(
        expected_clip_score=r["metrics"]["expected_clip_score"] + 1)), r"metric metrics\.expected_clip_score claims"),
    "changed CMC@1": (edit_results(lambda r: r["metrics"].update({"retrieval_cmc@1": 1.0})),
                      r"metric metrics\.retrieval_cmc@1 claims"),
    "claimed metric that cannot be recomputed": (edit_results(lambda r: r["metrics"].update(fid=3.5)),
                                                 r"metric metrics\.fid cannot be recomputed"),
    "NaN metric": (_nan_metric, r"invalid JSON .*NaN/Infinity are not allowed"),
    "raised clip score": (edit_rows(_row(0, clip_score=99.0)), r"metric metrics\.expected_clip_score claims"),
    "NaN clip score": (edit_rows(_row(1, clip_score=float("nan"))), r"row 1 has clip_score nan"),
    "judge top-1 relabelled": (edit_rows(_row(2, topk_ids=[2, 1, 0], topk_scores=[3.0, 2.0, 1.0])),
                               r"metric metrics\.judge_top1 claims"),
    "repeated judge class": (edit_rows(_row(0, topk_ids=[1, 1, 0])), r"topk_ids of row 0 repeat a class"),
    "judge class out of range": (edit_rows(_row(0, topk_ids=[7, 1, 0])), r"topk_ids of row 0 hold a class index "
                                                                           r"outside 0\.\.2"),
    "dropped image": (edit_rows(lambda rows: rows[1:]), r"prompt 0 of concept_index 0 has 1 images; "
                                                        r"generation\.images_per_prompt is 2"),
    "duplicated image": (edit_rows(lambda rows: rows + rows[:1]), r"image \(concept_index 0, prompt_index 0, "
                                                                  r"image_index 0\) appears 2 times"),
    "dropped concept": (edit_rows(lambda rows: [r for r in rows if r["concept_index"] != 2]),
                        r"1 of 3 concepts have no image \(first: concept_index 2\)"),
    "concept index out of range": (edit_rows(_row(0, concept_index=3)), r"row 0 has concept_index 3, outside 0\.\.2"),
    "image index beyond images per prompt": (edit_rows(_row(1, image_index=5)), r"row 1 has image_index 5"),
    "wrong concept id": (edit_rows(_row(0, concept_id="blue_jay")), r"row 0 has concept_id 'blue_jay' but "
                                                                    r"concept_index 0 is 'red_panda'"),
    "forged seed": (edit_rows(_row(0, seed=12345)), r"row 0 has seed 12345, not the harness's seed"),
    "two texts for one prompt": (edit_rows(_row(1, prompt="another text")),
                                 r"prompt 0 of concept_index 0 has two different texts"),
    "prompts differ from the claim": (edit_rows(_rename_prompt), r"do not hash to prompts\.all_prompts_hash"),
    "half the retrieval ranks missing": (edit_rows(_row(0, retrieval_rank=None)),
                                         r"retrieval_rank is null for 1 images and not others"),
    "retrieval ranks dropped": (edit_rows(lambda rows: [dict(r, retrieval_rank=None) for r in rows]),
                                r"names a retrieval judge but retrieval_rank is empty"),
    "missing column": (_drop_column, r"not a readable predictions parquet with columns"),
    "random-weight judge": (edit_results(set_field("judge.random_weights", True)),
                            r"judge\.random_weights must be false"),
    "random-weight generator": (edit_results(set_field("model.random_weights", True)),
                                r"model\.random_weights must be false"),
    "hostile judge spec": (edit_results(set_field("judge.spec", "<script>alert(1)</script>")),
                           r"judge\.spec contains forbidden character"),
    "limited run": (edit_results(set_field("config.limit", 2)), r"the run used --limit 2"),
    "other class list": (edit_results(set_field("dataset.class_list_hash", "0" * 64)), r"dataset\.class_list_hash is"),
    "subset of concepts": (edit_results(set_field("dataset.num_concepts_selected", 2)),
                           r"dataset\.num_concepts_selected is 2; every one of the board's 3 concepts"),
    "other retrieval gallery": (edit_results(set_field("dataset.fingerprint", "f" * 64)),
                                r"dataset\.fingerprint \(the retrieval gallery\) is"),
    "gallery fingerprint disagrees": (edit_results(set_field("retrieval.gallery_fingerprint", "e" * 64)),
                                      r"retrieval\.gallery_fingerprint must equal dataset\.fingerprint"),
    "unknown task": (edit_results(set_field("task", "video")), r"task 'video' is not accepted by this board"),
    "claimed images per prompt": (edit_results(set_field("generation.images_per_prompt", 3)),
                                  r"has 2 images; generation\.images_per_prompt is 3"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_t2i_submission_rejected(case: str, t2i_submission: Path, board: Board) -> None:
    tamper, message = TAMPERED[case]
    tamper(t2i_submission)
    with pytest.raises(SubmissionRejected, match=message) as caught:
        validate_submission(t2i_submission, board)
    assert "\n" not in str(caught.value)


def test_cli_validates_and_rejects_t2i_with_one_line(t2i_submission: Path, board: Board, capsys) -> None:
    assert main(["leaderboard", "validate", str(t2i_submission), "--board", str(board.root)]) == 0
    assert f"text-to-image, judge top-1 0.6667 under judge {JUDGE}" in capsys.readouterr().out
    edit_results(lambda r: r["metrics"].update(max_clip_score=0.0))(t2i_submission)
    assert main(["leaderboard", "validate", str(t2i_submission), "--board", str(board.root)]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "metric metrics.max_clip_score claims 0.0" in error[0]


def test_t2i_arrays_equal_the_harness_reader(t2i_submission: Path, board: Board) -> None:
    """The board's own parquet checks hand ``t2i_metrics`` exactly what ``read_t2i_predictions`` reads."""
    from letitwag.harness.t2i import read_t2i_predictions
    from letitwag.leaderboard.t2i import check_t2i_predictions

    path = t2i_submission / "predictions.parquet"
    results = json.loads((t2i_submission / "results.json").read_text())
    checked = check_t2i_predictions(path.read_bytes(), path, results, board.config.dataset["class_names"])
    reference = read_t2i_predictions(path)
    assert set(checked.metric_inputs()) == set(reference)
    for name, values in reference.items():
        assert np.array_equal(checked.metric_inputs()[name], values), name


@pytest.mark.slow
def test_tiny_diffusers_run_goes_through_the_board(runs: Path, tmp_path: Path) -> None:
    """A real diffusers pipeline + open_clip judge run (tiny, RANDOM weights: plumbing) is read unchanged.

    The board rightly refuses random-weight generators and judges, so for the acceptance check the
    three ``random_weights`` flags are flipped (as in test_harness_roundtrip.py); every other byte
    is the harness's own.
    """
    import torch

    from letitwag.models.tiny import build_tiny_diffusers, build_tiny_open_clip

    dataset = runs / "colours"
    judge = build_tiny_open_clip(tmp_path / "judge")
    pipeline = build_tiny_diffusers(tmp_path / "sd")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["evaluate", "--model", judge, "--dataset", str(dataset), "--out", str(tmp_path / "reference"),
                     "--workers", "0", "--bootstrap-samples", "10", "--prompts", "simple", "--no-cache"]) == 0
        assert main(["evaluate", "--task", "t2i", "--model", pipeline, "--judge", judge, "--judge-prompts", "simple",
                     "--retrieval-judge", judge, "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                     "--no-cache", "--workers", "0", "--bootstrap-samples", "10", "--images-per-prompt", "2",
                     "--generation-options", '{"num_inference_steps": 2}']) == 0
    finally:
        torch.set_num_threads(threads)
    board = init_from_reference(tmp_path / "board", tmp_path / "reference")
    submission = tmp_path / "submission"
    submission.mkdir()
    for name in ("results.json", "predictions.parquet"):
        shutil.copyfile(tmp_path / "run" / name, submission / name)
    (submission / "submission.json").write_text(json.dumps(_metadata("tiny random diffusers (plumbing)")))

    results = json.loads((submission / "results.json").read_text())
    for flag in ("model", "judge", "retrieval.judge"):
        with pytest.raises(SubmissionRejected, match=rf"{re.escape(flag)}\.random_weights must be false"):
            validate_submission(submission, board)
        set_field(f"{flag}.random_weights", False)(results)
        (submission / "results.json").write_text(json.dumps(results))
    validated, stored = add_submission(submission, board)
    assert validated.results["metrics"]["judge_top1"] == results["metrics"]["judge_top1"]
    assert (stored / "verification.json").is_file()
