"""Step 1 over a whole manifest: chunked, parallel, resumable validation.

Why chunks: 130,500 images take minutes; each chunk's results are written atomically as one
parquet file, and a rerun after ``kill -9`` skips the chunks already on disk. Images that
arrive as inline bytes, or that validation converted (CMYK, 16-bit, alpha, EXIF rotation),
are written under ``<out>/images/`` *before* their chunk file, so a finished chunk always
points at files that exist. The chunk folder is named by the step's fingerprint: changed
thresholds or inputs never reuse stale results.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from letitwag.builders.curate.images import CheckedImage, ImageLimits, check_image
from letitwag.builders.curate.phash import WORKER_PRELOAD
from letitwag.engine.executors import worker_context
from letitwag.io import atomic_write_bytes, atomic_write_with

LOGGER = logging.getLogger(__name__)

RESULT_SCHEMA = pa.schema([
    ("row", pa.int64()), ("reason", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("format", pa.string()), ("size_bytes", pa.int64()), ("sha256", pa.string()), ("pixel_sha256", pa.string()),
    ("phash", pa.string()), ("converted", pa.string()), ("image_path", pa.string()),
])
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}


def stored_image_name(candidate_id: str, extension: str) -> str:
    """Where an extracted/converted image lives under the curated directory (stable per candidate)."""
    key = hashlib.sha256(candidate_id.encode("utf-8")).hexdigest()
    return f"images/{key[:2]}/{key[2:26]}{extension}"


def _validate_item(item: tuple, out_dir: Path, limits: ImageLimits) -> dict:
    row, candidate_id, data, source_path, relative_source = item
    if data is None:
        try:
            data = Path(source_path).read_bytes()
        except OSError as error:
            return {"row": row, "reason": f"unreadable file {relative_source}: {error.strerror or error}",
                    "image_path": relative_source}
    checked: CheckedImage = check_image(data, limits)
    record = {
        "row": row, "reason": checked.reason, "width": checked.width, "height": checked.height,
        "format": checked.format, "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "pixel_sha256": checked.pixel_sha256, "phash": checked.phash, "converted": checked.converted,
        "image_path": relative_source,
    }
    if checked.rgb_png is not None:
        name = stored_image_name(candidate_id, ".png")
        atomic_write_bytes(out_dir / name, checked.rgb_png)
        record["image_path"] = name
    elif relative_source is None:  # inline bytes: give them a file so later steps never hold bytes
        name = stored_image_name(candidate_id, _EXTENSIONS.get(checked.format or "", ".bin"))
        atomic_write_bytes(out_dir / name, data)
        record["image_path"] = name
    return record


def validate_chunk(items: list[tuple], out_dir: str, chunk_path: str, limits: ImageLimits) -> int:
    """Validate one chunk (runs in a worker process) and write its results file atomically."""
    records = [_validate_item(item, Path(out_dir), limits) for item in items]
    table = pa.Table.from_pylist(records, schema=RESULT_SCHEMA)
    atomic_write_with(chunk_path, lambda tmp: pq.write_table(table, tmp))
    return len(records)


def _chunks(candidates_file: Path, candidates_dir: Path, out_dir: Path, ids: list[str],
            chunk_size: int) -> Iterator[tuple[int, list[tuple]]]:
    """Chunks of (row, candidate_id, inline bytes, absolute path, path relative to out_dir)."""
    parquet = pq.ParquetFile(candidates_file)
    relative_folders: dict[str, str] = {}  # os.path.relpath costs ~40 us: once per folder, not per file
    row = 0
    for index, batch in enumerate(parquet.iter_batches(batch_size=chunk_size, columns=["image"])):
        items = []
        for image in batch.column(0).to_pylist():
            path = image.get("path") if image else None
            data = image.get("bytes") if image else None
            if data is not None or path is None:
                items.append((row, ids[row], data or b"", None, None))
            else:
                absolute = path if os.path.isabs(path) else os.path.join(candidates_dir, path)
                folder, name = os.path.split(absolute)
                if folder not in relative_folders:
                    relative_folders[folder] = os.path.relpath(folder or ".", out_dir)
                relative = relative_folders[folder]
                items.append((row, ids[row], None, absolute, name if relative == "." else os.path.join(relative, name)))
            row += 1
        yield index, items


def run_validation(candidates_file: Path, candidates_dir: Path, out_dir: Path, work_dir: Path, ids: list[str],
                   limits: ImageLimits, chunk_size: int, workers: int) -> pa.Table:
    """Validate every candidate (resuming finished chunks); returns the results in row order."""
    work_dir.mkdir(parents=True, exist_ok=True)
    progress = tqdm(total=len(ids), desc="validate", unit="img", mininterval=1.0)
    pending = {}
    done = 0

    def chunk_path(index: int) -> Path:
        return work_dir / f"chunk-{index:06d}.parquet"

    executor = None
    if workers > 1:
        # forked from the fork server, which has this module and the compiled pHash resize loaded
        executor = ProcessPoolExecutor(workers, mp_context=worker_context(WORKER_PRELOAD))
    try:
        for index, items in _chunks(candidates_file, candidates_dir, out_dir, ids, chunk_size):
            if chunk_path(index).exists():
                progress.update(len(items))
                done += 1
                continue
            if executor is None:
                progress.update(validate_chunk(items, str(out_dir), str(chunk_path(index)), limits))
                continue
            while len(pending) >= 2 * workers:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    progress.update(future.result())
                    pending.pop(future)
            pending[executor.submit(validate_chunk, items, str(out_dir), str(chunk_path(index)), limits)] = index
        for future in pending:
            progress.update(future.result())
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
        progress.close()
    if done:
        LOGGER.info("validate: resumed, %d finished chunk(s) reused", done)
    files = sorted(work_dir.glob("chunk-*.parquet"))
    table = pa.concat_tables([pq.read_table(f, schema=RESULT_SCHEMA) for f in files]) if files else RESULT_SCHEMA.empty_table()
    return table.sort_by("row")
