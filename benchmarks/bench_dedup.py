"""Near-duplicate detection: letitwag's pHash search vs imagededup's ``PHash().find_duplicates``.

Claim checked: on the same 20,000 JPEGs (640x480, with planted near-duplicates: resized,
re-encoded, cropped by a few pixels) letitwag finds the same duplicate pairs (agreement >= 99%)
at least 4x faster.

Images are generated, seeded, from real photos that ship inside packages (scikit-image's
bundled ``skimage.data`` images, scikit-learn's sample images, matplotlib's grace_hopper.jpg):
random crops, flips, colour changes, resized to 640x480. imagededup runs in its own venv under
``bench-out/`` (created on first use; it reuses this venv's torch/numpy through a ``.pth`` file so
nothing is downloaded twice), timed inside its process (imports excluded) with its defaults
(``cpu_count()`` encoding workers, Cython brute-force search). letitwag runs with the same
number of processes. Both are timed from image files to the list of pairs.

    python benchmarks/bench_dedup.py            # 20,000 images (several minutes on 2 cores)
    python benchmarks/bench_dedup.py --quick    # 2,000 images
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench-out"
VENV = BENCH / "imagededup-venv"
IMAGEDEDUP = "imagededup==0.3.3.post2"
WIDTH, HEIGHT = 640, 480

PHOTO_DUMP = r"""
import os, sys, numpy as np
from PIL import Image
out = sys.argv[1]
photos = {}
import skimage.data as data
for name in ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "page", "brick", "grass",
             "gravel", "immunohistochemistry", "text", "clock", "hubble_deep_field", "retina"]:
    try:
        photos["skimage_" + name] = np.asarray(getattr(data, name)())
    except Exception as error:  # some images are fetched at run time and fail offline
        print("skip", name, type(error).__name__, file=sys.stderr)
from sklearn.datasets import load_sample_images
for name, image in zip(["china", "flower"], load_sample_images().images):
    photos["sklearn_" + name] = image
import matplotlib
photos["matplotlib_grace_hopper"] = np.asarray(Image.open(os.path.join(
    os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")))
for name, array in photos.items():
    if array.dtype != np.uint8:
        values = array.astype(float)
        array = (255 * (values - values.min()) / max(np.ptp(values), 1)).astype(np.uint8)
    Image.fromarray(array).convert("RGB").save(os.path.join(out, name + ".png"))
print(len(photos))
"""

IMAGEDEDUP_RUN = r"""
import json, sys, time
from imagededup.methods import PHash
folder, result = sys.argv[1], sys.argv[2]
hasher = PHash(verbose=False)
start = time.perf_counter()
encodings = hasher.encode_images(image_dir=folder)
encoded = time.perf_counter()
duplicates = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=10)
done = time.perf_counter()
pairs = sorted({tuple(sorted((a, b))) for a, others in duplicates.items() for b in others})
json.dump({"encode_s": encoded - start, "search_s": done - encoded, "total_s": done - start,
           "hashes": encodings, "pairs": pairs}, open(result, "w"))
"""


def run(command: list[str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, **options)


def ensure_imagededup() -> Path:
    """The benchmark venv's python, with imagededup (and scikit-image for the source photos)."""
    python = VENV / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import imagededup, skimage, sklearn"],
                                          capture_output=True).returncode == 0:
        return python
    run([sys.executable, "-m", "venv", str(VENV)])
    site = next((VENV / "lib").glob("python*/site-packages"))
    main_site = [p for p in sys.path if p.endswith("site-packages")][0]
    (site / "main_venv.pth").write_text(main_site + "\n")
    constraints = REPO / "constraints.txt"
    extra = ["--constraint", str(constraints)] if constraints.exists() else []
    run([python, "-m", "pip", "install", "-q", *extra, IMAGEDEDUP, "scikit-image", "scikit-learn"])
    return python


def source_photos(python: Path) -> list[Path]:
    folder = BENCH / "dedup-photos"
    if not list(folder.glob("*.png")):
        folder.mkdir(parents=True, exist_ok=True)
        run([python, "-c", PHOTO_DUMP, str(folder)])
    return sorted(folder.glob("*.png"))


def _variant(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, str, int]:
    """A planted near-duplicate: resized, re-encoded harder, or cropped by a few pixels."""
    kind = ["resized", "reencoded", "cropped"][int(rng.integers(3))]
    if kind == "resized":
        scale = float(rng.uniform(0.5, 0.9))
        return image.resize((int(WIDTH * scale), int(HEIGHT * scale)), Image.BICUBIC), kind, 90
    if kind == "reencoded":
        return image, kind, int(rng.integers(35, 65))
    left, top, right, bottom = (int(v) for v in rng.integers(1, 9, size=4))
    return image.crop((left, top, WIDTH - right, HEIGHT - bottom)), kind, 90


def _crop(photo: Image.Image, rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A random window of ``photo`` (random scale and place, maybe mirrored), resized to width x height."""
    side = float(rng.uniform(0.3, 1.0))
    crop_width = max(32, int(min(photo.width, photo.height * width / height) * side))
    crop_height = int(crop_width * height / width)
    x = int(rng.integers(0, photo.width - crop_width + 1))
    y = int(rng.integers(0, photo.height - crop_height + 1))
    window = photo.crop((x, y, x + crop_width, y + crop_height)).resize((width, height), Image.BILINEAR)
    return window.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else window


def _base_image(seed: int, index: int, photos: list[Image.Image]) -> tuple[Image.Image, int]:
    """Unique image ``index``: two crops of (usually different) photos side by side, colour-shifted."""
    rng = np.random.default_rng([seed, index, 2])
    canvas = Image.new("RGB", (WIDTH, HEIGHT))
    split = int(rng.integers(WIDTH // 4, 3 * WIDTH // 4))
    canvas.paste(_crop(photos[int(rng.integers(len(photos)))], rng, split, HEIGHT), (0, 0))
    canvas.paste(_crop(photos[int(rng.integers(len(photos)))], rng, WIDTH - split, HEIGHT), (split, 0))
    gains = rng.uniform(0.75, 1.25, size=3)
    lookup = [min(255, int(v * g)) for g in gains for v in range(256)]
    return canvas.point(lookup), int(rng.integers(80, 96))


_PHOTOS: list[Image.Image] = []


def _load_photos(paths: list[Path]) -> None:
    for path in paths:
        with Image.open(path) as photo:
            photo = photo.convert("RGB")
            photo.thumbnail((900, 900))
            _PHOTOS.append(photo)


def _source_of(seed: int, index: int, planted_fraction: float) -> int:
    """Which unique image ``index`` copies (itself unless it is a planted near-duplicate)."""
    rng = np.random.default_rng([seed, index])
    if index < 10 or rng.random() >= planted_fraction:
        return index
    return _source_of(seed, int(rng.integers(0, index)), planted_fraction)


def _make(task: tuple) -> tuple[int, int | None, str | None]:
    index, seed, planted_fraction, folder = task
    source = _source_of(seed, index, planted_fraction)
    image, quality = _base_image(seed, source, _PHOTOS)
    kind = None
    if source != index:
        image, kind, quality = _variant(image, np.random.default_rng([seed, index, 3]))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    (folder / f"{index:06d}.jpg").write_bytes(buffer.getvalue())
    return index, (source if source != index else None), kind


def generate(count: int, seed: int, photos: list[Path], workers: int) -> tuple[Path, list]:
    folder = BENCH / f"dedup-images-{count}-seed{seed}"
    truth_file = BENCH / f"dedup-images-{count}-seed{seed}.planted.json"
    if truth_file.exists():
        return folder, json.loads(truth_file.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [(i, seed, 0.1, folder) for i in range(count)]
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_load_photos, initargs=(photos,)) as pool:
        results = pool.map(_make, tasks, chunksize=64)
    planted = [[f"{source:06d}.jpg", f"{index:06d}.jpg", kind] for index, source, kind in results if source is not None]
    truth_file.write_text(json.dumps(planted))
    return folder, planted


def letitwag_pairs(files: list[Path], workers: int, draft_size: int | None, margin: int = 0) -> tuple[float, set]:
    from letitwag.builders.curate.phash import near_duplicate_files

    start = time.perf_counter()
    first, second, _ = near_duplicate_files(files, 10, workers=workers, draft_size=draft_size, margin=margin)
    elapsed = time.perf_counter() - start
    return elapsed, {tuple(sorted((files[a].name, files[b].name))) for a, b in zip(first.tolist(), second.tolist())}


def hash_agreement(files: list[Path], theirs: dict, workers: int, draft_size: int, sample: int) -> tuple[float, float, int]:
    """On a sample: exact hashes equal to imagededup's; fast hashes equal to exact; largest bit difference."""
    from letitwag.builders.curate.phash import hash_files

    chosen = files[:: max(1, len(files) // sample)]
    exact = hash_files(chosen, workers=workers)
    fast = hash_files(chosen, workers=workers, draft_size=draft_size)
    same = np.mean([f"{h:016x}" == theirs.get(f.name) for f, h in zip(chosen, exact)])
    flips = [bin(a ^ b).count("1") for a, b in zip(exact, fast)]
    return float(same), float(np.mean(np.array(flips) == 0)), max(flips)


def agreement(ours: set, theirs: set) -> float:
    union = ours | theirs
    return len(ours & theirs) / len(union) if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 images instead of 20,000")
    parser.add_argument("--count", type=int, default=None, help="number of images (overrides --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--draft-size", type=int, default=32,
                        help="fast mode: JPEG decoded at the smallest DCT scale keeping both sides >= this")
    parser.add_argument("--margin", type=int, default=2,
                        help="fast mode: pairs whose draft distance is within this of the threshold are re-decided "
                             "on exact hashes (default 2)")
    parser.add_argument("--reuse-baseline", action="store_true",
                        help="reuse imagededup's result file from an earlier run of the same images (its timing "
                             "then comes from that run: say so when quoting the ratio)")
    args = parser.parse_args()
    count = args.count or (2_000 if args.quick else 20_000)
    python = ensure_imagededup()
    photos = source_photos(python)
    start = time.perf_counter()
    folder, planted = generate(count, args.seed, photos, args.workers)
    print(f"images: {count} JPEGs {WIDTH}x{HEIGHT} from {len(photos)} packaged photos in {folder} "
          f"({len(planted)} planted near-duplicates; generated/reused in {time.perf_counter() - start:.1f} s)")
    files = sorted(folder.glob("*.jpg"))

    result_file = BENCH / f"imagededup-result-{count}.json"
    if args.reuse_baseline and result_file.exists():
        print(f"imagededup baseline REUSED from {result_file} (timed in an earlier run)")
    else:
        run([str(python), "-c", IMAGEDEDUP_RUN, str(folder), str(result_file)])
    theirs = json.loads(result_file.read_text())
    their_pairs = {tuple(p) for p in theirs["pairs"]}

    exact_s, exact_pairs = letitwag_pairs(files, args.workers, None)
    fast_s, fast_pairs = letitwag_pairs(files, args.workers, args.draft_size, args.margin)
    same_bits, draft_same, max_flips = hash_agreement(files, theirs["hashes"], args.workers, args.draft_size, 1000)
    planted_pairs = {tuple(sorted(p[:2])) for p in planted}
    rows = [
        ("imagededup PHash().find_duplicates", theirs["total_s"], their_pairs),
        ("letitwag exact (full decode)", exact_s, exact_pairs),
        (f"letitwag fast (draft {args.draft_size}, re-check +-{args.margin})", fast_s, fast_pairs),
    ]
    print(f"imagededup: encode {theirs['encode_s']:.1f} s + search {theirs['search_s']:.1f} s")
    print(f"{'method':46s} {'seconds':>8s} {'img/s':>8s} {'pairs':>7s} {'speedup':>8s} {'agreement':>10s} "
          f"{'planted found':>13s}")
    for name, seconds, pairs in rows:
        print(f"{name:46s} {seconds:8.1f} {count / seconds:8.0f} {len(pairs):7d} {theirs['total_s'] / seconds:7.2f}x "
              f"{agreement(pairs, their_pairs):10.4f} {len(pairs & planted_pairs) / max(len(planted_pairs), 1):13.3f}")
    print(f"on a 1,000-image sample: exact hashes identical to imagededup's {same_bits:.2%}; draft hashes identical "
          f"to exact {draft_same:.2%}, largest difference {max_flips} bits (pairs within {args.margin} of the "
          f"threshold are re-checked)")
    print(f"RATIO exact: {theirs['total_s'] / exact_s:.2f}x, fast: {theirs['total_s'] / fast_s:.2f}x "
          f"(claim: >= 4x with >= 99% pair agreement)")


if __name__ == "__main__":
    main()
