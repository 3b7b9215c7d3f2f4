"""Curation throughput and peak memory (validate + hashes + exact/near dedup + balance, no model).

Claims checked:
- throughput: ``letitwag curate`` end to end at >= 300 images/s, on the bench_dedup JPEGs
  (640x480 photos made from packaged sample images, 10% planted near-duplicates) spread over
  290 concepts;
- memory: peak resident memory (the curate process plus its worker processes, summed, sampled
  every 0.1 s) < 4 GB for a 130,500-candidate manifest (290 concepts x 450; tiny 64x64 images,
  inline bytes, so memory rather than decoding is what is measured).

Each run is a separate ``python -m letitwag curate`` process, timed from start to exit
(interpreter start and imports included).

    python benchmarks/bench_curate.py            # 20,000 photos + 130,500 tiny candidates
    python benchmarks/bench_curate.py --quick    # 2,000 photos + 13,050 tiny candidates
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_dedup  # noqa: E402  (same folder: reuses its seeded photo generator)

from letitwag.builders.manifest import IMAGE_TYPE, write_candidates  # noqa: E402

BENCH = bench_dedup.BENCH
CONCEPTS = 290


def run_curate(candidates: Path, out: Path, per_class: int, workers: int) -> tuple[float, float]:
    """Wall seconds and peak summed RSS (bytes) of one curate run."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "letitwag", "--log-level", "WARNING", "curate", str(candidates),
               "--out", str(out), "--per-class", str(per_class), "--workers", str(workers)]
    start = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"curate failed with exit code {process.returncode}")
    print("   ", process.stdout.read().decode().strip())
    return elapsed, peak


def photo_candidates(count: int, workers: int) -> Path:
    """The first ``count`` bench_dedup images (a larger generated set is reused when present)."""
    existing = [f for f in BENCH.glob("dedup-images-*-seed0") if (BENCH / f"{f.name}.planted.json").exists()
                and int(f.name.split("-")[2]) >= count]
    if existing:
        folder = min(existing, key=lambda f: int(f.name.split("-")[2]))
    else:
        python = bench_dedup.ensure_imagededup()
        folder, _ = bench_dedup.generate(count, 0, bench_dedup.source_photos(python), workers)
    files = sorted(folder.glob("*.jpg"))[:count]
    candidates = BENCH / f"curate-photos-{count}"
    table = pa.table({
        "candidate_id": [f.stem for f in files],
        "concept_id": [f"concept_{i % CONCEPTS:03d}" for i in range(len(files))],
        "image": pa.array([{"bytes": None, "path": str(f)} for f in files], IMAGE_TYPE),
        "source": ["folder"] * len(files),
    })
    write_candidates(candidates, table, {"source": "bench_curate photos"})
    return candidates


def tiny_candidates(per_concept: int) -> Path:
    candidates = BENCH / f"curate-tiny-{per_concept * CONCEPTS}"
    if (candidates / "candidates.parquet").exists():
        return candidates
    rng = np.random.default_rng(0)
    images, ids, concepts = [], [], []
    for index in range(per_concept * CONCEPTS):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))  # 4x4 gave pHash twins
        buffer = io.BytesIO()
        coarse.resize((64, 64), Image.BILINEAR).save(buffer, format="JPEG", quality=85)
        images.append({"bytes": buffer.getvalue(), "path": None})
        ids.append(f"tiny/{index:06d}")
        concepts.append(f"concept_{index % CONCEPTS:03d}")
    table = pa.table({"candidate_id": ids, "concept_id": concepts, "image": pa.array(images, IMAGE_TYPE),
                      "source": ["folder"] * len(ids)})
    write_candidates(candidates, table, {"source": "bench_curate tiny"})
    return candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 photos and 13,050 tiny candidates")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    photos = 2_000 if args.quick else 20_000
    per_concept = 45 if args.quick else 450

    candidates = photo_candidates(photos, args.workers)
    seconds, peak = run_curate(candidates, BENCH / "curate-photos-out", max(1, photos // CONCEPTS // 2), args.workers)
    print(f"throughput: {photos} JPEGs 640x480 in {seconds:.1f} s = {photos / seconds:.0f} images/s "
          f"(claim >= 300), peak RSS {peak / 1e9:.2f} GB")

    tiny = tiny_candidates(per_concept)
    count = per_concept * CONCEPTS
    seconds, peak = run_curate(tiny, BENCH / "curate-tiny-out", per_concept, args.workers)
    print(f"memory: {count} candidates (64x64, inline bytes) in {seconds:.1f} s = {count / seconds:.0f} images/s, "
          f"peak RSS (process tree) {peak / 1e9:.2f} GB (claim < 4 GB)")


if __name__ == "__main__":
    main()
