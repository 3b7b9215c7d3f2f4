"""Leaderboard performance claims, printed against their targets.

1. Building the site for 1,000 submissions takes under 10 s and the main page stays under 1 MB.
2. Validating one 130,500-row submission (290 classes x 450, 1,000 bootstrap samples) takes under 5 s.
3. (No target in the issue; printed for reference) validating one text-to-image submission of
   290 concepts x 80 prompts x 4 images = 92,800 generated images, 1,000 bootstrap samples.

The 1,000 board entries are written straight into a board folder in the stored layout (results.json
with 290 per-class accuracies, submission.json, verification.json): building reads stored entries
and never re-validates them, and validating 1,000 submissions is claim 2 times 1,000. Predictions
are synthetic (seeded), not a real model. For claim 2 the time of the harness's metric function
alone (the recompute step) is printed too, so the board's own checks can be told apart from it.

    python benchmarks/bench_leaderboard.py            # full size
    python benchmarks/bench_leaderboard.py --quick    # 100 entries, 13,050 rows, 8 prompts (a smoke run)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.data import read_bundled_json
from letitwag.harness.metrics import classification_metrics
from letitwag.tables import paper_counts_by_corpus
from letitwag.leaderboard.board import Board, init_board
from letitwag.leaderboard.site import build_site
from letitwag.leaderboard.validate import validate_submission

CLASSES = list(read_bundled_json("let_it_wag_classes.json"))


def dataset(num_samples: int) -> dict:
    return {"id": "bethgelab/Let-It-Wag", "split": "train", "revision": "bench", "fingerprint": "f" * 64,
            "num_samples": num_samples, "num_classes": len(CLASSES), "class_names": CLASSES,
            "class_list_hash": hashlib.sha256("\n".join(CLASSES).encode()).hexdigest()}


def synthetic_topk(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct top-5 ids (right ~55% of the time) and descending scores, without a 290-wide score matrix."""
    rng = np.random.default_rng(seed)
    n, c = len(labels), len(CLASSES)
    first = np.where(rng.random(n) < 0.55, labels, rng.integers(0, c, n))
    steps = rng.integers(1, c // 5, (n, 1)) * np.arange(1, 5)
    topk = np.concatenate([first[:, None], (first[:, None] + steps) % c], axis=1).astype(np.int32)
    scores = np.sort(rng.random((n, 5)).astype(np.float32), axis=1)[:, ::-1]
    return topk, np.ascontiguousarray(scores)


def write_run(folder: Path, labels: np.ndarray, seed: int, data: dict, counts: dict, bootstrap: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    topk, scores = synthetic_topk(labels, seed)
    def lists(values: np.ndarray, kind: pa.DataType) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(values.reshape(-1), 5).cast(pa.list_(kind))

    pq.write_table(pa.table({"sample_index": pa.array(np.arange(len(labels)), pa.int64()),
                             "label": pa.array(labels, pa.int32()),
                             "topk_ids": lists(topk, pa.int32()), "topk_scores": lists(scores, pa.float32())}),
                   folder / "predictions.parquet")
    metrics = classification_metrics(labels, topk, CLASSES, bootstrap_samples=bootstrap, seed=0,
                                     frequency_counts=counts)
    results = {"format": "letitwag.results/1", "task": "classification",
               "model": {"spec": f"bench:{seed}", "adapter": "python", "name": "bench", "pretrained": None,
                         "resolved_checkpoint": None, "revision": f"r{seed}", "random_weights": False},
               "dataset": data, "prompts": {"set": "ensemble", "hash": "0" * 64, "num_templates": 80},
               "config": {"seed": 0, "batch_size": 64, "precision": "fp32", "device": "cpu", "workers": 0,
                          "limit": None},
               "metrics": metrics}
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "submission.json").write_text(json.dumps({
        "format": "letitwag.submission/1", "model_name": f"Submitted model {seed}", "link": "https://example.org/m",
        "parameters": 1000 + seed, "pretraining_data": "synthetic", "includes_let_it_wag_images": False,
        "license": "MIT", "imagenet_top1": float(40 + seed % 40)}))


def write_t2i_run(folder: Path, data: dict, prompts_per_concept: int, counts: dict) -> int:
    """A t2i submission as the harness writes it (seeded judge predictions, no images); returns its rows."""
    from letitwag.harness.t2i import t2i_metrics, t2i_table
    from letitwag.harness.t2i.generation import image_seed
    from letitwag.harness.t2i.prompts import prompts_hash

    folder.mkdir(parents=True, exist_ok=True)
    images = 4
    prompts = [[f"a photo number {p} of a {c.replace('_', ' ')}" for p in range(prompts_per_concept)] for c in CLASSES]
    concept = np.repeat(np.arange(len(CLASSES)), prompts_per_concept * images)
    prompt_index = np.tile(np.repeat(np.arange(prompts_per_concept), images), len(CLASSES))
    image_index = np.tile(np.arange(images), len(CLASSES) * prompts_per_concept)
    texts = [prompts[c][p] for c, p in zip(concept.tolist(), prompt_index.tolist())]
    topk, scores = synthetic_topk(concept, 2)
    clip = np.random.default_rng(3).uniform(10, 40, len(concept)).astype(np.float32)
    columns = {"concept_index": concept, "concept_id": [CLASSES[c] for c in concept.tolist()],
               "prompt_index": prompt_index, "prompt": texts, "image_index": image_index,
               "seed": [image_seed(0, CLASSES[c], t, i) for c, t, i in zip(concept.tolist(), texts, image_index.tolist())],
               "image_path": [f"images/{c:05d}/{p:03d}-{i:03d}.png" for c, p, i in
                              zip(concept.tolist(), prompt_index.tolist(), image_index.tolist())],
               "image_sha256": ["0" * 64] * len(concept), "blacked_out": np.zeros(len(concept), bool),
               "topk_ids": topk, "topk_scores": scores, "clip_score": clip, "retrieval_rank": None}
    pq.write_table(t2i_table(columns), folder / "predictions.parquet")
    metrics = t2i_metrics(concept, topk, clip.astype(np.float64), np.stack([concept, prompt_index], axis=1), CLASSES,
                          bootstrap_samples=1000, seed=0, frequency_counts=counts)
    judge = {"spec": "open_clip:ViT-L-14/openai", "adapter": "open_clip", "random_weights": False, "revision": None,
             "prompts": "ensemble", "prompts_hash": "0" * 64}
    results = {"format": "letitwag.results/1", "task": "t2i",
               "model": {"spec": "bench:t2i", "adapter": "python", "revision": "r1", "random_weights": False},
               "dataset": {**{k: v for k, v in data.items() if k != "num_samples"}, "fingerprint": None,
                           "num_concepts_selected": len(CLASSES)},
               "prompts": {"set": "bench", "hash": "0" * 64, "num_templates": prompts_per_concept,
                           "all_prompts_hash": prompts_hash(prompts)},
               "judge": judge, "retrieval": None, "generation": {"images_per_prompt": images},
               "config": {"seed": 0, "precision": "fp16", "limit": None}, "metrics": metrics}
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "submission.json").write_text(json.dumps({
        "format": "letitwag.submission/1", "model_name": "Benchmark generator", "link": "https://example.org/g",
        "parameters": None, "pretraining_data": "synthetic", "includes_let_it_wag_images": False, "license": "MIT"}))
    return len(concept)


def plant_entries(board_root: Path, count: int, rng: np.random.Generator) -> None:
    """``count`` stored entries in the board layout (what ``add`` leaves behind)."""
    for i in range(count):
        folder = board_root / "submissions" / f"bench-{i}" / "r1" / "fp32_ensemble"
        folder.mkdir(parents=True)
        per_class = dict(zip(CLASSES, rng.random(len(CLASSES)).round(6).tolist()))
        top1 = float(np.mean(list(per_class.values())))
        metrics = {"top1": top1, "top5": min(1.0, top1 + 0.2), "mean_per_class_recall": top1,
                   "ci95": {m: [top1 - 0.01, top1 + 0.01] for m in ("top1", "top5", "mean_per_class_recall")},
                   "per_class_accuracy": per_class}
        (folder / "results.json").write_text(json.dumps({"model": {"spec": f"bench:{i}"}, "metrics": metrics}))
        (folder / "submission.json").write_text(json.dumps({
            "model_name": f"Benchmark model {i}", "link": "https://example.org/m", "parameters": 1000 + i,
            "pretraining_data": f"corpus-{i % 17}", "includes_let_it_wag_images": False, "license": "MIT",
            "imagenet_top1": float(30 + i % 60)}))
        (folder / "verification.json").write_text(json.dumps({
            "key": {"model": f"Benchmark model {i}", "revision": "r1", "precision": "fp32", "prompt_set": "ensemble"},
            "ranked": True, "not_ranked_reason": None, "verified_at": "2026-01-01T00:00:00+00:00"}))
        (folder / "predictions.parquet").write_bytes(b"")


def report(name: str, value: float, target: float, unit: str, cpu: float | None = None) -> bool:
    """One line per claim; ``cpu`` (process CPU seconds) tells contention apart from work on a shared machine."""
    ok = value < target
    extra = f"  (CPU {cpu:.2f} s)" if cpu is not None else ""
    print(f"{name:<48} {value:10.2f} {unit:<3} target < {target:g} {unit}  {'OK' if ok else 'MISSED'}{extra}")
    return ok


def timed(function, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 entries and 13,050 rows: a smoke run")
    parser.add_argument("--entries", type=int, default=None, help="board entries for the build benchmark")
    parser.add_argument("--keep", type=Path, default=None, help="keep the board and site here instead of a temp dir")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    entries = args.entries or (100 if args.quick else 1000)
    per_class = 45 if args.quick else 450
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-leaderboard-"))
    counts = paper_counts_by_corpus()
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    data = dataset(len(labels))
    results_ok = []

    board_root = work / "board"
    init_board(board_root, {"dataset": data}, labels)
    plant_entries(board_root, entries, np.random.default_rng(0))
    site, wall, cpu = timed(build_site, Board.open(board_root), work / "site")
    results_ok.append(report(f"build site, {entries} submissions + 40 paper", wall, 10, "s", cpu))
    results_ok.append(report("main page size", (site / "index.html").stat().st_size / 1e6, 1, "MB"))

    write_run(work / "submission", labels, 1, data, counts, bootstrap=1000)
    _, wall, cpu = timed(validate_submission, work / "submission", Board.open(board_root))
    results_ok.append(report(f"validate one {len(labels):,}-row submission", wall, 5, "s", cpu))
    topk = np.array(pq.read_table(work / "submission" / "predictions.parquet")["topk_ids"].to_pylist())
    _, wall, cpu = timed(lambda: classification_metrics(labels, topk, CLASSES, bootstrap_samples=1000, seed=0,
                                                        frequency_counts=counts))
    print(f"{'  of which: harness metric function alone':<48} {wall:10.2f} s   (CPU {cpu:.2f} s)")

    rows = write_t2i_run(work / "t2i_submission", data, 8 if args.quick else 80, counts)
    _, wall, cpu = timed(validate_submission, work / "t2i_submission", Board.open(board_root))
    print(f"{f'validate one {rows:,}-image t2i submission':<48} {wall:10.2f} s   (CPU {cpu:.2f} s; no target)")
    print(f"work folder: {work}")
    return 0 if all(results_ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
