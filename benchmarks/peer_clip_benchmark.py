"""Same images, same weights, same templates: letitwag's evaluation next to CLIP_benchmark's.

Shared by ``tests/harness/test_peer_clip_benchmark.py`` (tiny model, a few dozen images),
``bench_evaluate.py`` (ViT-B-32, 2,000 images) and ``bench_retrieval.py`` (ViT-B-32, COCO-5k-like).
Classification images are written twice from the same bytes: a class-per-folder tree
CLIP_benchmark reads with torchvision's ``ImageFolder``, and an HF-layout parquet dataset
(``Image`` + ``ClassLabel``) letitwag reads like Let it Wag!. Both tools also read the same
folders in CLIP_benchmark's webdataset layout (``write_webdataset``): classification with
shipped class names and templates, and retrieval with captions (COCO-like sentences).
"""

from __future__ import annotations

import io
import random
import tarfile
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


def write_webdataset(folder: Path, samples: list[dict[str, bytes]], *, split: str = "test", shards: int = 1,
                     dataset_type: str | None = None, classnames: list[str] | None = None,
                     templates: list[str] | None = None) -> Path:
    """``samples`` (each ``{extension: bytes}``, e.g. jpg + cls or jpg + txt) in CLIP_benchmark's layout:
    ``<folder>/<split>/nshards.txt`` + ``0.tar``..., and the metadata files that are given."""
    folder = Path(folder)
    (folder / split).mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(samples), shards + 1).astype(int)
    for shard in range(shards):
        with tarfile.open(folder / split / f"{shard}.tar", "w", format=tarfile.USTAR_FORMAT) as archive:
            for index in range(bounds[shard], bounds[shard + 1]):
                for extension, data in samples[index].items():
                    member = tarfile.TarInfo(f"s{index:07d}.{extension}")
                    member.size, member.mtime = len(data), 0
                    archive.addfile(member, io.BytesIO(data))
    (folder / split / "nshards.txt").write_text(f"{shards}\n")
    for name, lines in (("dataset_type.txt", [dataset_type] if dataset_type else None),
                        ("classnames.txt", classnames), ("zeroshot_classification_templates.txt", templates)):
        if lines is not None:
            (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def write_wds_classification(folder: Path, images: int, classes: int, templates: list[str], seed: int = 0,
                             size=(256, 240), shards: int = 2) -> dict:
    """Seeded JPEGs with integer labels (``.cls``), class names and templates in the webdataset layout."""
    rng = np.random.default_rng(seed)
    class_ids = CLASS_IDS[:classes] if classes <= len(CLASS_IDS) else [f"class_{i:03d}" for i in range(classes)]
    names = [name.replace("_", " ") for name in class_ids]
    samples = [{"jpg": _jpeg(rng, row % classes, size), "cls": str(row % classes).encode()} for row in range(images)]
    root = write_webdataset(folder, samples, shards=shards, classnames=names, templates=templates)
    return {"root": str(root), "classnames": names, "labels": [row % classes for row in range(images)],
            "images": [sample["jpg"] for sample in samples]}


# COCO-like captions: a subject (a COCO concept) doing something somewhere, 8-16 words (COCO's test
# captions average ~10.5 words), now and then a longer one.
_SUBJECTS = ("man", "woman", "dog", "cat", "person", "group of people", "young boy", "girl", "giraffe", "zebra",
             "train", "bus", "pizza", "elephant", "horse", "bird", "motorcycle", "kitchen", "plate of food", "skier")
_ACTIONS = ("sitting on", "standing next to", "walking down", "riding", "holding", "looking at", "laying on",
            "parked in front of", "flying over", "eating from", "playing with", "waiting at")
_PLACES = ("a wooden bench", "the street", "a grassy field", "the beach", "a table", "a snowy hill", "the kitchen counter",
           "a city sidewalk", "a tall building", "the water", "a red fire hydrant", "a busy road", "the living room")
_EXTRAS = ("on a sunny day", "with a frisbee", "near some trees", "while people watch", "at night", "in the rain",
           "next to a large clock tower and a few parked cars", "with a surfboard under one arm")


def coco_like_captions(rng: random.Random, count: int) -> list[str]:
    """``count`` seeded COCO-like captions (different for every call of a seeded ``rng``)."""
    captions = []
    for _ in range(count):
        words = [rng.choice(("A", "The", "Two", "An old", "A small")), rng.choice(_SUBJECTS), rng.choice(_ACTIONS),
                 rng.choice(_PLACES)]
        if rng.random() < 0.6:
            words.append(rng.choice(_EXTRAS))
        captions.append(" ".join(words) + rng.choice((".", "", " .")))
    return captions


def write_wds_retrieval(folder: Path, images: int, captions_per_image: int = 5, seed: int = 0, size=(256, 240),
                        shards: int = 2) -> dict:
    """Seeded JPEGs with ``captions_per_image`` COCO-like captions each (``KEY.txt``), ``dataset_type.txt`` = retrieval."""
    rng, text_rng = np.random.default_rng(seed), random.Random(seed)
    samples, captions = [], []
    for row in range(images):
        own = coco_like_captions(text_rng, captions_per_image)
        captions.append(own)
        samples.append({"jpg": _jpeg(rng, row % 12, size), "txt": "\n".join(own).encode()})
    root = write_webdataset(folder, samples, shards=shards, dataset_type="retrieval")
    return {"root": str(root), "captions": captions, "images": [sample["jpg"] for sample in samples]}


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



def wds_job(kind: str, arch: str, checkpoint: str, config_dir: str | None, root: str, batch_size: int,
            workers: int) -> dict:
    """A ``wds_classification`` / ``wds_retrieval`` job: CLIP_benchmark reads the webdataset folder itself."""
    return {"kind": kind, "arch": arch, "checkpoint": checkpoint, "config_dir": config_dir,
            "wds_root": str(Path(root).resolve()), "batch_size": batch_size, "workers": workers, "device": "cpu",
            "amp": False}


def compare_wds_classification(letitwag_results: dict, clip_benchmark_report: dict) -> dict:
    """Per-sample top-1 agreement on a webdataset folder: CLIP_benchmark's i-th prediction (shard order,
    read with no DataLoader workers) is letitwag's sample ``i``."""
    ours = letitwag_top1_by_row(letitwag_results["out_dir"])
    theirs = dict(enumerate(clip_benchmark_report["top1"]))
    common = sorted(set(ours) & set(theirs))
    agree = sum(ours[row] == theirs[row] for row in common)
    return {"samples_compared": len(common), "samples_missing": len(set(ours) ^ set(theirs)),
            "top1_agreement": agree / len(common) if common else 0.0,
            "top1_delta_points": 100.0 * (letitwag_results["metrics"]["top1"] - clip_benchmark_report["metrics"]["acc1"])}


# letitwag's retrieval metric names and CLIP_benchmark's (its "image retrieval" is text -> image)
RETRIEVAL_NAMES = {f"{ours}_recall@{k}": f"{theirs}_retrieval_recall@{k}"
                   for ours, theirs in (("text_to_image", "image"), ("image_to_text", "text")) for k in (1, 5, 10)}


def compare_retrieval(letitwag_results: dict, clip_benchmark_report: dict) -> dict:
    """Recall@1/5/10 of both directions side by side, and their differences in points."""
    metrics, peer = letitwag_results["metrics"], clip_benchmark_report["metrics"]
    return {"letitwag": {name: metrics[name] for name in RETRIEVAL_NAMES},
            "clip_benchmark": {name: peer[theirs] for name, theirs in RETRIEVAL_NAMES.items()},
            "delta_points": {name: 100.0 * (metrics[name] - peer[theirs]) for name, theirs in RETRIEVAL_NAMES.items()}}
