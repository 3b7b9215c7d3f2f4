"""Same images, same weights, same templates: letitwag's evaluation next to CLIP_benchmark's.

Shared by ``tests/harness/test_peer_clip_benchmark.py`` (tiny model, a few dozen images) and
``bench_evaluate.py`` (ViT-B-32, 2,000 images). The images are written twice from the same
bytes: a class-per-folder tree CLIP_benchmark reads with torchvision's ``ImageFolder``, and an
HF-layout parquet dataset (``Image`` + ``ClassLabel``) letitwag reads like Let it Wag!.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

CLASS_IDS = ["Harriss_Hawk", "A300B4", "eastern_hog-nosed_snake", "Acadian_Flycatcher", "A310", "Affenpinscher",
             "tabby_cat", "Boeing_737", "red_fox", "garden_spider", "sea_lion", "fire_truck"]


def _jpeg(rng: np.random.Generator, label: int, size: tuple[int, int]) -> bytes:
    """A seeded picture: a class-tinted gradient with noise and a random bright box."""
    from PIL import Image

    width, height = size
    tint = np.array([(53 * label) % 256, (97 * label + 40) % 256, (181 * label + 80) % 256], dtype=np.float32)
    ramp = np.linspace(0.3, 1.0, width, dtype=np.float32)[None, :, None]
    pixels = tint * ramp + rng.normal(0, 25, (height, width, 3)).astype(np.float32)
    y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
    pixels[y : y + height // 3, x : x + width // 3] += 60
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_peer_dataset(folder: Path, images: int, classes: int, seed: int = 0, size=(256, 240)) -> dict:
    """Write ``images`` seeded JPEGs of ``classes`` classes as an ImageFolder tree and an HF dataset."""
    import datasets

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    class_ids = CLASS_IDS[:classes] if classes <= len(CLASS_IDS) else [f"class_{i:03d}" for i in range(classes)]
    blobs, labels = [], []
    for row in range(images):
        label = row % classes
        data = _jpeg(rng, label, (size[0] + int(rng.integers(0, 32)), size[1] + int(rng.integers(0, 32))))
        path = folder / "imagefolder" / f"c{label:03d}" / f"{row:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        blobs.append({"bytes": data, "path": None})
        labels.append(label)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=class_ids)})
    (folder / "hub" / "data").mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"image": blobs, "label": labels}, features=features).to_parquet(
        str(folder / "hub" / "data" / "test-00000-of-00001.parquet"))
    return {"image_root": str(folder / "imagefolder"), "hub_dir": str(folder / "hub"), "class_ids": class_ids}


def clip_benchmark_job(arch: str, checkpoint: str, config_dir: str | None, dataset: dict, prompt_names: list[str],
                       templates: list[str], batch_size: int, workers: int) -> dict:
    """The job ``_clip_benchmark_runner.py`` reads: the same model, images, class names and templates."""
    return {"arch": arch, "checkpoint": checkpoint, "config_dir": config_dir, "image_root": dataset["image_root"],
            "classnames": prompt_names, "templates": templates, "batch_size": batch_size, "workers": workers,
            "device": "cpu", "amp": False}


def letitwag_top1_by_row(run_dir: str | Path) -> dict[int, int]:
    """``row index -> top-1 class`` from a letitwag run's predictions.parquet."""
    import pyarrow.parquet as pq

    table = pq.read_table(Path(run_dir) / "predictions.parquet", columns=["sample_index", "topk_ids"]).to_pydict()
    return {int(i): int(ids[0]) for i, ids in zip(table["sample_index"], table["topk_ids"])}


def compare(letitwag_results: dict, clip_benchmark_report: dict) -> dict:
    """Top-1 agreement per sample and metric differences (in points, i.e. percent) to CLIP_benchmark."""
    ours = letitwag_top1_by_row(letitwag_results["out_dir"])
    theirs = {int(stem): top1 for stem, top1 in zip(clip_benchmark_report["samples"], clip_benchmark_report["top1"])}
    common = sorted(set(ours) & set(theirs))
    agree = sum(ours[row] == theirs[row] for row in common)
    metrics, peer = letitwag_results["metrics"], clip_benchmark_report["metrics"]
    pairs = {"top1": "acc1", "top5": "acc5", "mean_per_class_recall": "mean_per_class_recall"}
    deltas = {}
    for ours_name, peer_name in pairs.items():
        a, b = metrics.get(ours_name), peer.get(peer_name)
        deltas[ours_name] = None if a is None or b is None else 100.0 * (a - b)
    return {"samples_compared": len(common), "samples_missing": len(set(ours) ^ set(theirs)),
            "top1_agreement": agree / len(common) if common else 0.0, "metric_delta_points": deltas,
            "letitwag": {k: metrics.get(k) for k in pairs}, "clip_benchmark": {k: peer.get(v) for k, v in pairs.items()}}

