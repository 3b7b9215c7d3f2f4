"""Zero-shot retrieval (and webdataset classification): letitwag vs CLIP_benchmark 1.6.2, same model, same files.

Claims checked (issue 14, "Numbers"):
- peer check: the same folders in CLIP_benchmark's webdataset layout, read by both tools (CLIP_benchmark
  with its own ``wds/`` builder), the same model: retrieval recall@1/5/10 in both directions within 0.1
  points; classification with the folder's class names and templates: per-sample top-1 identical on
  >= 99.5% of the images;
- throughput: letitwag's retrieval evaluation >= 1.2x CLIP_benchmark's on the same data (CPU, fp32, same
  batch size, same DataLoader workers);
- cache: a rerun from caches >= 20x faster (wall time, model load included) than the first run.

Model: ViT-B-32 with RANDOM weights (saved once as safetensors, loaded by both; a plumbing model at real
width, so its recalls are near chance and only the agreement and the speed mean something). Data: a
COCO-5k-like retrieval set: ``--images`` seeded 640x480 JPEGs (COCO's typical size) with 5 COCO-like
captions each (~13 tokens), in 10 shards (``wds_mscoco_captions``, so letitwag tags captions with the
bundled ``coco`` concepts as it would for the real set); a classification set of ``--cls-images`` JPEGs
in 10 classes with 18 shipped templates.

Seconds compared: CLIP_benchmark's ``zeroshot_retrieval.evaluate`` (its DataLoader, image and text
encoding, scoring; model loading excluded) against the sum of letitwag's retrieval phases (open and
index the shards, caption and image features, ranking, concept tagging, metrics with 1,000 bootstrap
resamples; model loading excluded). CLIP_benchmark encodes each batch's captions with its images (5 x
the batch size per text forward); letitwag encodes captions in batches of the batch size, shortest first.

    python benchmarks/bench_retrieval.py                 # 5,000 images x 5 captions (COCO-5k-like)
    python benchmarks/bench_retrieval.py --images 1000   # Flickr-1k-like
    python benchmarks/bench_retrieval.py --quick         # 200 images, 100 classification images
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clip_benchmark_env  # noqa: E402
from bench_evaluate import ARCH, random_checkpoint  # noqa: E402
from peer_clip_benchmark import (compare_retrieval, compare_wds_classification, wds_job,  # noqa: E402
                                 write_wds_classification, write_wds_retrieval)

CAPTIONS_PER_IMAGE = 5
SHARDS = 10
IMAGE_SIZE = (640, 480)
# 18 generic templates, as CLIP_benchmark's webdataset exports ship per dataset
TEMPLATES = ["a photo of a {c}.", "a blurry photo of a {c}.", "a black and white photo of a {c}.",
             "a low contrast photo of a {c}.", "a high contrast photo of a {c}.", "a bad photo of a {c}.",
             "a good photo of a {c}.", "a photo of a small {c}.", "a photo of a big {c}.", "a photo of the {c}.",
             "a blurry photo of the {c}.", "a black and white photo of the {c}.", "a low contrast photo of the {c}.",
             "a high contrast photo of the {c}.", "a bad photo of the {c}.", "a good photo of the {c}.",
             "a photo of the small {c}.", "a photo of the big {c}."]
RETRIEVAL_PHASES = ("dataset", "caption_features", "image_features", "ranking", "concepts", "metrics")


def cached_dataset(folder: Path, key: dict, write) -> dict:
    """Write a dataset once per ``key`` (generating thousands of JPEGs takes minutes)."""
    marker = folder.parent / f"{folder.name}.json"
    if marker.is_file() and json.loads(marker.read_text()).get("key") == key:
        return json.loads(marker.read_text())["info"]
    shutil.rmtree(folder, ignore_errors=True)
    info = write()
    info.pop("images", None)
    marker.write_text(json.dumps({"key": key, "info": info}))
    return info


def run_letitwag(checkpoint: Path, dataset: str, out: Path, cache: Path, args, task: str) -> tuple[dict, float]:
    from letitwag.harness.options import EvaluationOptions
    from letitwag.harness.runner import evaluate

    options = EvaluationOptions(model=f"open_clip:{ARCH}/{checkpoint}", task=task, dataset=dataset, out=out,
                                cache_dir=cache, batch_size=args.batch_size, workers=args.workers)
    started = time.perf_counter()
    results = evaluate(options)
    return results, time.perf_counter() - started


def task_seconds(results: dict) -> float:
    """letitwag's retrieval time without model loading: the sum of its phases."""
    seconds = results["profile"]["seconds"]
    return sum(seconds[phase] for phase in RETRIEVAL_PHASES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help="retrieval images, 5 captions each (default 5000)")
    parser.add_argument("--cls-images", type=int, default=None, help="classification images (default 500)")
    parser.add_argument("--quick", action="store_true", help="200 retrieval and 100 classification images")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass, the same for both tools")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers, the same for both tools")
    parser.add_argument("--out", type=Path, default=Path("bench-out/retrieval"))
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    images = args.images or (200 if args.quick else 5000)
    cls_images = args.cls_images or (100 if args.quick else 500)
    import logging

    logging.basicConfig(level=logging.WARNING)
    venv = clip_benchmark_env.create(clip_benchmark_env.DEFAULT_VENV)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = random_checkpoint(out / "weights")
    retrieval_root = out / f"data-{images}" / "wds_mscoco_captions"
    retrieval_root.parent.mkdir(parents=True, exist_ok=True)
    cached_dataset(retrieval_root, {"images": images, "size": IMAGE_SIZE, "shards": SHARDS},
                   lambda: write_wds_retrieval(retrieval_root, images, CAPTIONS_PER_IMAGE, seed=0, size=IMAGE_SIZE,
                                               shards=SHARDS))
    cls_root = out / f"cls-{cls_images}" / "wds_toy_classification"
    cls_root.parent.mkdir(parents=True, exist_ok=True)
    cls_info = cached_dataset(cls_root, {"images": cls_images, "templates": TEMPLATES},
                              lambda: write_wds_classification(cls_root, cls_images, 10, TEMPLATES, seed=0,
                                                               size=(256, 240), shards=4))
    for stale in ("cache-retrieval", "cache-classification"):
        shutil.rmtree(out / stale, ignore_errors=True)

    print(f"retrieval: {images} images x {CAPTIONS_PER_IMAGE} captions, batch {args.batch_size}, "
          f"workers {args.workers}, {ARCH} RANDOM weights, fp32, CPU")
    ours, first_wall = run_letitwag(checkpoint, str(retrieval_root), out / "run-retrieval", out / "cache-retrieval",
                                    args, "retrieval")
    _, rerun_wall = run_letitwag(checkpoint, str(retrieval_root), out / "run-retrieval-rerun",
                                 out / "cache-retrieval", args, "retrieval")
    peer = clip_benchmark_env.run(wds_job("wds_retrieval", ARCH, str(checkpoint), None, str(retrieval_root),
                                          args.batch_size, args.workers), venv)
    recall = compare_retrieval(ours, peer)
    ours_seconds, peer_seconds = task_seconds(ours), peer["evaluate_seconds"]

    cls_ours, _ = run_letitwag(checkpoint, str(cls_root), out / "run-classification", out / "cache-classification",
                               args, "classification")
    cls_peer = clip_benchmark_env.run(wds_job("wds_classification", ARCH, str(checkpoint), None, str(cls_root),
                                              args.batch_size, 0), venv)
    classification = compare_wds_classification(cls_ours, cls_peer)

    report = {
        "images": images, "captions": ours["metrics"]["num_captions"], "batch_size": args.batch_size,
        "workers": args.workers, "model": f"{ARCH} RANDOM weights (plumbing)",
        "clip_benchmark_seconds": peer_seconds, "letitwag_seconds": ours_seconds,
        "throughput_ratio": peer_seconds / ours_seconds, "letitwag_profile_s": ours["profile"]["seconds"],
        "recall_vs_clip_benchmark": recall,
        "first_run_wall_s": first_wall, "cached_rerun_wall_s": rerun_wall, "rerun_speedup": first_wall / rerun_wall,
        "classification_images": cls_images, "classification_vs_clip_benchmark": classification,
        "classification_templates_used": cls_ours["prompts"], "classnames": cls_info["classnames"],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    profile = ours["profile"]["seconds"]
    print(f"CLIP_benchmark: {peer_seconds:.1f} s ({images / peer_seconds:.2f} images/s with their captions)")
    print(f"letitwag:       {ours_seconds:.1f} s ({images / ours_seconds:.2f} images/s) -> "
          f"{peer_seconds / ours_seconds:.2f}x  [captions {profile['caption_features']:.1f} s, images "
          f"{profile['image_features']:.1f} s, ranking {profile['ranking']:.2f} s, concepts {profile['concepts']:.2f} s, "
          f"metrics {profile['metrics']:.2f} s, dataset {profile['dataset']:.2f} s]")
    worst = max(abs(delta) for delta in recall["delta_points"].values())
    print("recall (letitwag / CLIP_benchmark, %): " + ", ".join(
        f"{name} {100 * recall['letitwag'][name]:.2f}/{100 * recall['clip_benchmark'][name]:.2f}"
        for name in recall["letitwag"]) + f"; largest difference {worst:.3f} points")
    print(f"cached rerun: first run {first_wall:.1f} s, rerun {rerun_wall:.2f} s -> {first_wall / rerun_wall:.1f}x")
    print(f"classification ({cls_images} images, 10 classes, the folder's {len(TEMPLATES)} templates): per-sample "
          f"top-1 identical on {100 * classification['top1_agreement']:.2f}% of {classification['samples_compared']} "
          f"images, top-1 difference {classification['top1_delta_points']:.3f} points")
    print(f"report: {out / 'report.json'}")


if __name__ == "__main__":
    main()
