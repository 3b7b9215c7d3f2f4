"""Sharded, resumable image tagging: images -> per-concept image counts + postings.

Runs on the shared engine (``letitwag.engine``): each input is cut into shards, a shard's
partial (its postings, per-concept counts, image and skip counts) is stored atomically with a
completion marker, and a rerun after ``kill -9`` reuses every finished shard. Partials are
folded in shard order, so local and Ray runs, resumed or not, write identical files.

Outputs in ``out_dir``: ``image.parquet`` (frequency table, count type ``image``, corpus size =
images tagged), its provenance sidecar (tagger, model, prompts, threshold, inputs, skipped
images by reason, shards reused/computed) and ``image_postings.parquet`` (sample_id,
concept_id). A concept is present in an image iff the tagger's probability is > threshold.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import functools
import io
import json
import logging
import multiprocessing
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from letitwag import __version__
from letitwag.concepts import ConceptList
from letitwag.engine.executors import Executor, LocalExecutor
from letitwag.engine.run import iter_partials, run_shards
from letitwag.engine.shards import Shard, file_identity, fingerprint, shard_key
from letitwag.engine.store import ShardStore
from letitwag.errors import UserInputError
from letitwag.frequency.images.protocol import Tagger
from letitwag.frequency.images.readers import (
    ImageRecord,
    ImageShard,
    decode_image,
    plan_shards,
    read_shard,
)
from letitwag.io import atomic_path
from letitwag.pixels.decoder import place_rows
from letitwag.pixels.jpeg import device_route
from letitwag.postings import POSTINGS_SCHEMA
from letitwag.tables import FrequencyTable

logger = logging.getLogger(__name__)

PARTIAL_META_KEY = b"letitwag.image-partial"
SHARD_STORE = Path("shards-image")  # beside the text side's "shards"; safe to share one --out
SAMPLE_ID_RULES = {
    "folder": "path relative to the folder without extension",
    "tar": "webdataset key (member path up to the basename's first dot)",
    "parquet": "--id-column, else <file>:<row> (file relative to the parquet inputs' common folder)",
    "hf": "--id-column, else <dataset>/<split>:<row>",
    "hf-disk": "--id-column, else <folder name>/<split>:<row>",
}


@dataclass(frozen=True)
class TaggingJob:
    """Everything a worker needs besides its shard; pickled once per worker / Ray task."""

    tagger: Tagger
    num_concepts: int
    threshold: float
    batch_size: int
    decode_threads: int


@dataclass
class ImagePartial:
    """One shard's result; merged by concatenating postings (in shard order) and summing counts."""

    postings: pa.Table  # sample_id (string), concept_index (int32)
    documents: np.ndarray
    images: int
    skipped: Counter

    def to_bytes(self) -> bytes:
        """Arrow IPC (no pickle): the postings, with counts and skips in the schema metadata."""
        meta = {"images": self.images, "skipped": dict(self.skipped), "documents": self.documents.tolist()}
        table = self.postings.replace_schema_metadata({PARTIAL_META_KEY: json.dumps(meta).encode()})
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ImagePartial":
        table = pa.ipc.open_stream(data).read_all()
        meta = json.loads(table.schema.metadata[PARTIAL_META_KEY])
        return cls(table.replace_schema_metadata(None), np.asarray(meta["documents"], dtype=np.int64),
                   meta["images"], Counter(meta["skipped"]))


# --- worker side ----------------------------------------------------------------------------

def _prepared(tagger: Tagger, draft_size: int | None, record: ImageRecord):
    """(sample id, model input or None, skip reason or None) for one record; runs in a thread."""
    if record.error is not None:
        return record.sample_id, None, record.error
    image, reason = decode_image(record.data, draft_size)
    if image is None:
        return record.sample_id, None, reason
    try:
        return record.sample_id, tagger.preprocess(image), None
    except (OSError, ValueError) as error:
        logger.debug("%s: preprocessing failed (%s)", record.sample_id, error)
        return record.sample_id, None, "preprocess_failed"


def _chunks(records: Iterator[ImageRecord], size: int) -> Iterator[list[ImageRecord]]:
    chunk: list[ImageRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _split(prepared: list[tuple]) -> tuple[list[str], list, list[str]]:
    """(ids of the images to tag, their model inputs, skip reasons of the others)."""
    ok = [(sample_id, tensor) for sample_id, tensor, reason in prepared if reason is None]
    return [i for i, _ in ok], [t for _, t in ok], [reason for _, _, reason in prepared if reason is not None]


def _on_cpu(pool, prepare, chunk: list[ImageRecord]):
    """Decode a chunk in the thread pool; returns a function collecting ``_split``'s triple."""
    futures = [pool.submit(prepare, record) for record in chunk]
    return lambda: _split([future.result() for future in futures])


def _on_device(tagger, pool, prepare, chunk: list[ImageRecord]) -> tuple[list[str], object, list[str]]:
    """``_split``'s triple with the inputs as one batch on the device: the JPEGs the device decodes
    in one ``tagger.decode_batch`` call, the rest on the CPU path in the thread pool."""
    import torch

    to_device = [i for i, r in enumerate(chunk) if r.error is None and r.data and device_route(r.data) is None]
    on_cpu = {i: pool.submit(prepare, record) for i, record in enumerate(chunk) if i not in set(to_device)}
    kept, parts, reasons = [], [], []
    if to_device:
        pixels, decoded = tagger.decode_batch([chunk[i].data for i in to_device])
        device_rows = np.asarray(to_device)[decoded]
        parts.append((device_rows, pixels))
        kept += device_rows.tolist()
        reasons += ["corrupt_image"] * int((~decoded).sum())
    cpu_rows, cpu_inputs = [], []
    for row, future in on_cpu.items():
        _, tensor, reason = future.result()
        if reason is None:
            cpu_rows.append(row)
            cpu_inputs.append(tensor)
        else:
            reasons.append(reason)
    if cpu_rows:
        parts.append((np.asarray(cpu_rows), torch.stack(cpu_inputs)))
        kept += cpu_rows
    kept.sort()  # the shard's order
    batch = place_rows(parts, np.asarray(kept), tagger.device) if kept else None
    return [chunk[row].sample_id for row in kept], batch, reasons


def tag_shard(job: TaggingJob, shard: ImageShard) -> bytes:
    """The engine's map function: tag every image of one shard (decode in threads, batch on the model).

    Decoding of the next batch overlaps with the model's work on the current one. A tagger that
    decodes on its device (``decodes_on_device``) gets the baseline JPEGs' bytes in one call per
    batch; the other images take the CPU path in the threads. Taggers run their models under
    ``torch.inference_mode()`` themselves, so this loop needs no torch.
    """
    sample_ids: list[str] = []
    indices: list[np.ndarray] = []
    documents = np.zeros(job.num_concepts, dtype=np.int64)
    skipped: Counter = Counter()
    images = 0
    in_main_process = multiprocessing.parent_process() is None
    progress = tqdm(desc=f"tagging {Path(shard.source).name}", unit="img", leave=False, disable=not in_main_process)
    prepare = functools.partial(_prepared, job.tagger, getattr(job.tagger, "decode_size", None))
    on_device = bool(getattr(job.tagger, "decodes_on_device", False))
    with concurrent.futures.ThreadPoolExecutor(job.decode_threads) as pool, \
            concurrent.futures.ThreadPoolExecutor(1) as device_thread:
        chunks = _chunks(read_shard(shard), job.batch_size)

        def submit_next():
            chunk = next(chunks, None)
            if chunk is None:
                return None
            if on_device:
                return device_thread.submit(_on_device, job.tagger, pool, prepare, chunk).result
            return _on_cpu(pool, prepare, chunk)

        pending = submit_next()
        while pending is not None:
            ids, batch, reasons = pending()
            pending = submit_next()  # decoded by the threads while the model runs on ``batch``
            skipped.update(reasons)
            progress.update(len(ids) + len(reasons))
            if not ids:
                continue
            probabilities = np.asarray(job.tagger.probabilities(batch))
            _check_probabilities(probabilities, len(ids), job.num_concepts, shard)
            present = probabilities > job.threshold
            rows, columns = np.nonzero(present)
            sample_ids += [ids[row] for row in rows]
            indices.append(columns.astype(np.int32))
            documents += present.sum(axis=0)
            images += len(ids)
    progress.close()
    concept_indices = np.concatenate(indices) if indices else np.zeros(0, np.int32)
    postings = pa.table({"sample_id": pa.array(sample_ids, pa.string()), "concept_index": concept_indices})
    return ImagePartial(postings, documents, images, skipped).to_bytes()


def _check_probabilities(probabilities: np.ndarray, rows: int, columns: int, shard: ImageShard) -> None:
    if probabilities.shape != (rows, columns):
        raise ValueError(
            f"tagger returned probabilities of shape {probabilities.shape} for {rows} images and {columns} concepts"
        )
    if not np.isfinite(probabilities).all():
        raise UserInputError(f"{shard.source}: the tagger returned NaN/inf probabilities; try --precision fp32")


# --- driver side ----------------------------------------------------------------------------

def _shard_identity(shard: ImageShard) -> dict:
    identity = {"kind": shard.kind, "source": shard.source, "start": shard.start, "stop": shard.stop,
                "image_column": shard.image_column, "id_column": shard.id_column, "split": shard.split,
                "items": list(shard.items)}
    if shard.kind in ("tar", "parquet"):  # HF shards carry the dataset fingerprint in ``items``
        identity["file"] = file_identity(shard.source)
    return identity


def _engine_shards(shards: Sequence[ImageShard], parameters: dict) -> list[Shard]:
    params = fingerprint(parameters)
    result = []
    for shard in shards:
        identity = _shard_identity(shard)
        result.append(Shard(shard_key(shard.name, identity), shard, fingerprint(identity, params)))
    return result


def tag_images(
    images: Sequence[str],
    concepts: ConceptList,
    tagger: Tagger,
    out_dir: str | Path,
    threshold: float = 0.7,
    batch_size: int = 64,
    shard_size: int = 1000,
    executor: Executor | None = None,
    decode_threads: int | None = None,
    corpus: str | None = None,
    image_column: str | None = None,
    id_column: str | None = None,
    split: str | None = None,
) -> FrequencyTable:
    """Tag every image against ``concepts`` and write the image table + postings into ``out_dir``."""
    if len(concepts) == 0:
        raise UserInputError("the concept list is empty; give at least one concept")
    if not 0.0 <= threshold < 1.0:
        raise UserInputError(f"--threshold must be in [0, 1), got {threshold}")
    if batch_size < 1:
        raise UserInputError(f"--batch-size must be at least 1, got {batch_size}")
    out_dir = Path(out_dir)
    executor = executor or LocalExecutor(1)
    image_shards = plan_shards(list(images), shard_size, image_column, id_column, split)
    logger.info("%d image shard(s) from %d input(s); preparing the tagger", len(image_shards), len(images))
    tagger.prepare(concepts)
    tagger_metadata = tagger.metadata()
    parameters = {"tagger": tagger_metadata, "concepts": [(c.id, c.name) for c in concepts], "threshold": threshold}
    shards = _engine_shards(image_shards, parameters)
    threads = decode_threads or min(4, os.cpu_count() or 1)
    job = TaggingJob(tagger, len(concepts), threshold, batch_size, threads)
    report = run_shards(shards, functools.partial(tag_shard, job), ShardStore(out_dir / SHARD_STORE), executor,
                        description="image shards")

    documents, images_tagged, skipped, postings_rows = _merge_into_postings(
        out_dir / "image_postings.parquet", ShardStore(out_dir / SHARD_STORE), shards, concepts
    )
    provenance = {
        "tool": f"letitwag {__version__}",
        "command": "frequency tag-images",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "inputs": _describe_inputs(image_shards),
        "sample_ids": {kind: SAMPLE_ID_RULES[kind] for kind in sorted({s.kind for s in image_shards})},
        "parameters": {"threshold": threshold, "rule": "present iff probability > threshold",
                       "batch_size": batch_size, "shard_size": shard_size,
                       "concepts": concepts.name, "num_concepts": len(concepts)},
        "tagger": tagger_metadata,
        "images_tagged": images_tagged,
        "skipped": dict(sorted(skipped.items())),
        "postings": postings_rows,
        "run": report.summary(),
    }
    corpus_name = corpus or Path(images[0].removeprefix("hf:").rstrip("/")).stem
    table = FrequencyTable.from_counts(concepts, documents.tolist(), None, corpus_name, "image", images_tagged,
                                       provenance)
    table.write(out_dir / "image.parquet")
    logger.info("tagged %d images (%d skipped): %d postings", images_tagged, sum(skipped.values()), postings_rows)
    return table


def _merge_into_postings(
    path: Path, store: ShardStore, shards: Sequence[Shard], concepts: ConceptList
) -> tuple[np.ndarray, int, Counter, int]:
    """Fold the partials in shard order: sum the counts and stream the postings into ``path``.

    Memory holds one shard's partial at a time, whatever the corpus size. Sample ids are
    assumed unique across inputs (as the text side assumes); a tar's repeated key is read once.
    """
    concept_ids = pa.array(concepts.ids, pa.string())
    documents = np.zeros(len(concepts), dtype=np.int64)
    skipped: Counter = Counter()
    images = rows = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, POSTINGS_SCHEMA, compression="zstd") as writer:
        for partial in iter_partials(store, shards, ImagePartial.from_bytes):
            documents += partial.documents
            skipped.update(partial.skipped)
            images += partial.images
            rows += partial.postings.num_rows
            writer.write_table(pa.table(
                {"sample_id": partial.postings["sample_id"],
                 "concept_id": pc.take(concept_ids, partial.postings["concept_index"])},
                schema=POSTINGS_SCHEMA,
            ))
    return documents, images, skipped, rows


def _describe_inputs(shards: Sequence[ImageShard]) -> list[dict]:
    """One provenance record per input: kind, shards, and the file's identity for tars / parquet."""
    inputs: dict[tuple, dict] = {}
    for shard in shards:
        record = inputs.setdefault((shard.kind, shard.source), {"kind": shard.kind, "source": shard.source, "shards": 0})
        record["shards"] += 1
        if shard.kind in ("tar", "parquet"):
            record["identity"] = file_identity(shard.source)
        elif shard.kind in ("hf", "hf-disk"):
            record["fingerprint"] = shard.items[0]
    return list(inputs.values())
