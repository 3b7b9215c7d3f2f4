"""Image features for every task: decoded in DataLoader workers, encoded in streams, cached in chunks.

Why one module: classification, retrieval and the text-to-image retrieval judge encode dataset
images the same way, and share the resumable chunk cache (``cache.FeatureChunkStore``), the
``--limit`` subset and the ``--compile`` decision.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from letitwag.engine.executors import default_workers
from letitwag.errors import UserInputError
from letitwag.harness.batching import AdaptiveBatcher
from letitwag.harness.cache import FeatureChunkStore, digest, model_identity
from letitwag.harness.device_batches import DeviceBatches
from letitwag.harness.images import (ImageRows, collate_for_device, collate_rows, decode_with_preprocess,
                                     decode_worker_init)
from letitwag.harness.streams import OrderedStreams, intra_op_threads, resolve_streams, threads_per_stream
from letitwag.models.base import ModelOutputError
from letitwag.pixels import PIPELINE_VERSION
from letitwag.pixels.decoder import DecodeChoice, DeviceDecoder, resolve_decode

logger = logging.getLogger(__name__)

COMPILE_AUTO_MIN_IMAGES = 20_000
# DataLoader workers when --workers is not given: on an accelerator the workers decode every
# image (cpu) or read bytes and decode only what the device does not (gpu); on a CPU the model
# needs the cores, so two workers, as measured for --cpu-streams.
CPU_DEVICE_WORKERS = 2
MAX_DEVICE_DECODE_WORKERS = 8
MAX_CPU_DECODE_WORKERS = 32


def feature_profile() -> dict:
    """Seconds the image loop spent waiting for data and for the model, and images encoded.

    ``read_wait`` and ``device_decode`` are the device path's decoding thread (``device_batches``)."""
    return {"data_wait": 0.0, "forward": 0.0, "first_forward": 0.0, "read_wait": 0.0, "device_decode": 0.0,
            "images_encoded": 0}


def resolve_workers(requested: int | None, device: str, mode: str) -> int:
    """``--workers``, or (None) a count for the device and decode path (see the constants)."""
    if requested is not None:
        return requested
    if not str(device).startswith("cuda"):
        return CPU_DEVICE_WORKERS
    return min(default_workers(), MAX_DEVICE_DECODE_WORKERS if mode == "gpu" else MAX_CPU_DECODE_WORKERS)


@dataclass
class ImageDecode:
    """How a run reads its images: the resolved ``--decode``, the DataLoader workers, and how many
    images took which path (``counts``: ``device``, ``device_failed``, ``cpu_<reason>``, ``corrupt``)."""

    choice: DecodeChoice
    workers: int
    counts: Counter = field(default_factory=Counter)

    def describe(self) -> dict:
        """results.json ``decode``."""
        return {**self.choice.describe(), "workers": self.workers, "images": dict(sorted(self.counts.items()))}

    def model_key(self, encoder) -> str:
        """The feature cache's model identity: device-decoded features differ slightly from CPU-decoded ones."""
        key = model_identity(encoder)
        return key if self.choice.mode == "cpu" else digest([key, "decode", self.choice.mode, PIPELINE_VERSION])


def resolve_image_decode(options, encoder) -> ImageDecode:
    """``options.decode`` and ``options.workers`` resolved for this encoder's device and preprocessing."""
    choice = resolve_decode(getattr(options, "decode", "auto"), encoder.device, encoder.preprocess)
    return ImageDecode(choice, resolve_workers(options.workers, encoder.device, choice.mode))


def select_indices(num_rows: int, limit: int | None, seed: int) -> np.ndarray:
    """All rows, or a seeded random subset of ``limit`` rows in row order (``--limit``)."""
    if limit is None or limit >= num_rows:
        return np.arange(num_rows, dtype=np.int64)
    if limit <= 0:
        raise UserInputError(f"--limit must be positive, got {limit}")
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=limit, replace=False)).astype(np.int64)


def _encode_chunks(encoder, data, store: FeatureChunkStore, missing: list[int], options, dim: int,
                   profile: dict, decode: ImageDecode, streams: int = 1):
    """Compute, store and yield each missing chunk once complete.

    ``streams`` batches are encoded at once, each on ``cpus // streams`` intra-op threads
    (``letitwag.harness.streams``). ``profile`` accumulates where the main loop's time goes:
    ``data_wait`` blocked on the DataLoader, ``forward`` blocked on the model (the first
    result's wait also in ``first_forward``), which is what the overhead budget is judged on.
    """
    import torch
    from tqdm import tqdm

    batches = [
        list(store.positions(chunk))[start : start + options.batch_size]
        for chunk in missing
        for start in range(0, len(store.positions(chunk)), options.batch_size)
    ]
    on_device = decode.choice.mode == "gpu"
    rows = ImageRows(data.dataset, data.image_column, data.label_column, store.indices, encoder.preprocess,
                     device_decode=on_device)
    loader = torch.utils.data.DataLoader(
        rows, batch_sampler=batches, num_workers=decode.workers,
        collate_fn=collate_for_device if on_device else collate_rows,
        pin_memory=str(encoder.device).startswith("cuda"),
        worker_init_fn=decode_worker_init if decode.workers else None,
        prefetch_factor=4 if decode.workers else None,
    )
    if on_device:
        decoder = DeviceDecoder(decode.choice.recipe, encoder.device,
                                functools.partial(decode_with_preprocess, preprocess=encoder.preprocess), decode.counts)
        loader = DeviceBatches(loader, decoder, profile)
    batcher = AdaptiveBatcher(options.batch_size, "images")
    pending: dict[int, list] = {}

    def encode(pixels):
        if pixels is None:
            return None
        return torch.cat(batcher.run(encoder.encode_images, pixels)).cpu().numpy()

    def finish(batch, encoded):
        positions, indices, labels, hashes, ok, _ = batch
        features = np.zeros((len(positions), dim), dtype=np.float32)
        if encoded is not None:
            if encoded.shape[1] != dim:
                raise ModelOutputError(
                    f"{encoder.spec}: image features have dimension {encoded.shape[1]} but text features {dim}"
                )
            features[ok] = encoded
            profile["images_encoded"] += len(encoded)
        chunk = int(positions[0]) // store.chunk_size
        pending.setdefault(chunk, []).append((positions, indices, labels, hashes, ok, features))
        progress.update(len(positions))
        parts = pending[chunk]
        if sum(len(p[0]) for p in parts) == len(store.positions(chunk)):
            arrays = [np.concatenate([p[i] for p in parts]) for i in range(6)]
            order = np.argsort(arrays[0], kind="stable")
            names = ("positions", "indices", "labels", "hashes", "ok", "features")
            complete = {name: array[order] for name, array in zip(names, arrays)}
            store.save(chunk, complete)
            yield chunk, complete
            del pending[chunk]

    def timed(step):
        started = time.perf_counter()
        done = step()
        profile["forward"] += time.perf_counter() - started
        if done and not profile["first_forward"]:  # includes one-off costs such as compilation
            profile["first_forward"] = profile["forward"]
        return done

    total = sum(len(store.positions(c)) for c in missing)
    with tqdm(total=total, desc="image features", unit="img") as progress, intra_op_threads(threads_per_stream(streams)), \
            OrderedStreams(encode, streams) as running:
        waited = time.perf_counter()
        for batch in loader:
            profile["data_wait"] += time.perf_counter() - waited
            for done_batch, encoded in timed(lambda: running.submit(batch, batch[5])):
                yield from finish(done_batch, encoded)
            waited = time.perf_counter()
        for done_batch, encoded in timed(running.drain):
            yield from finish(done_batch, encoded)
    if batcher.reductions:
        logger.warning("image batch size reduced to %d after out-of-memory errors", batcher.batch_size)


def image_features(encoder, data, indices: np.ndarray, options, cache_root, dim: int,
                   profile: dict | None = None, streams: int | None = None,
                   decode: ImageDecode | None = None) -> tuple[dict, dict]:
    """Features and bookkeeping for every selected sample, reusing cached chunks.

    ``data`` has the rows (``data.dataset[i]``), their ``image_column`` and ``label_column``
    (None: no labels, every label -1) and a ``cache_identity``.

    ``streams``: batches encoded at once (default: ``options.cpu_streams`` resolved for the
    encoder's device, see ``letitwag.harness.streams``). ``decode``: the run's image path
    (default: resolved from ``options``); its ``counts`` are filled in."""
    profile = profile if profile is not None else feature_profile()
    decode = decode if decode is not None else resolve_image_decode(options, encoder)
    store = FeatureChunkStore(cache_root, decode.model_key(encoder), data.cache_identity, indices, options.chunk_size)
    chunks, missing = _cached_chunks(store, "image features")
    if missing:
        if streams is None:
            streams = resolve_streams(options.cpu_streams, encoder.device, compiled=False)
        for chunk, arrays in _encode_chunks(encoder, data, store, missing, options, dim, profile, decode, streams):
            chunks[chunk] = arrays
    merged = {name: np.concatenate([chunks[c][name] for c in range(store.num_chunks)])
              for name in ("indices", "labels", "hashes", "ok", "features")}
    return merged, _cache_info(store, missing)


def _cached_chunks(store: FeatureChunkStore, what: str) -> tuple[dict[int, dict], list[int]]:
    """The chunks already in the cache, and the numbers of those still to compute."""
    chunks: dict[int, dict] = {}
    for chunk in range(store.num_chunks):
        cached = store.load(chunk)
        if cached is not None:
            chunks[chunk] = cached
    missing = [c for c in range(store.num_chunks) if c not in chunks]
    logger.info("%s: %d chunks cached, %d to compute", what, len(chunks), len(missing))
    return chunks, missing


def _cache_info(store: FeatureChunkStore, missing: list[int]) -> dict:
    return {"chunks_reused": store.num_chunks - len(missing), "chunks_computed": len(missing),
            "folder": str(store.folder) if store.folder else None}


def caption_features(encoder, captions: list[str], options, cache_root, streams: int = 1,
                     profile: dict | None = None) -> tuple[np.ndarray, dict]:
    """``[M, D]`` unit text features of every caption, computed in resumable cached chunks.

    Why shortest first: captions are encoded in order of character length, so each batch holds
    captions of similar length and a text tower that stops at the longest caption of its batch
    (open_clip's CLIP, ``letitwag.models.open_clip_text_tower``) computes little padding. The
    order depends on the captions only, so chunk ``c`` always holds the same captions and a
    killed run resumes at the first missing chunk. ``streams`` batches are encoded at once, as
    for images (``letitwag.harness.streams``).
    """
    import torch
    from tqdm import tqdm

    profile = profile if profile is not None else {}
    lengths = np.fromiter(map(len, captions), dtype=np.int64, count=len(captions))
    order = np.argsort(lengths, kind="stable").astype(np.int64)
    identity = hashlib.sha256(json.dumps(captions, ensure_ascii=False).encode("utf-8")).hexdigest()
    store = FeatureChunkStore(cache_root, model_identity(encoder), f"captions:{identity}", order, options.chunk_size)
    chunks, missing = _cached_chunks(store, "caption features")
    batcher = AdaptiveBatcher(options.batch_size, "captions")

    def encode(texts: list[str]) -> np.ndarray:
        return torch.cat(batcher.run(encoder.encode_texts, texts)).cpu().numpy()

    pending: dict[int, list[np.ndarray]] = {}

    def finish(chunk: int, encoded: np.ndarray):
        progress.update(len(encoded))
        pending.setdefault(chunk, []).append(encoded)
        indices = store.indices[list(store.positions(chunk))]
        if sum(len(part) for part in pending[chunk]) == len(indices):
            arrays = {"indices": indices, "features": np.concatenate(pending.pop(chunk))}
            store.save(chunk, arrays)
            chunks[chunk] = arrays

    total = sum(len(store.positions(chunk)) for chunk in missing)
    with tqdm(total=total, desc="caption features", unit="caption", disable=not missing) as progress, \
            intra_op_threads(threads_per_stream(streams)), OrderedStreams(encode, streams) as running:
        for chunk in missing:
            indices = store.indices[list(store.positions(chunk))]
            for start in range(0, len(indices), options.batch_size):
                texts = [captions[i] for i in indices[start : start + options.batch_size]]
                for done_chunk, encoded in running.submit(chunk, texts):
                    finish(done_chunk, encoded)
        for done_chunk, encoded in running.drain():
            finish(done_chunk, encoded)
    profile["captions_encoded"] = profile.get("captions_encoded", 0) + total
    features = np.zeros((len(captions), chunks[0]["features"].shape[1] if chunks else 0), dtype=np.float32)
    for arrays in chunks.values():
        features[arrays["indices"]] = arrays["features"]
    return features, _cache_info(store, missing)


def apply_compile_option(encoder, mode: str, images_to_encode: int) -> bool:
    """``--compile on|off|auto``: compile the image tower when asked, or (auto) when it pays off.

    Why auto has a threshold: compiling ViT-B-32 costs minutes of CPU on a small machine (less
    on a rerun, inductor caches its graphs), so it is only worth it for large runs.
    """
    if mode not in ("on", "off", "auto"):
        raise UserInputError(f"--compile {mode!r}: choose on, off or auto")
    wanted = mode == "on" or (mode == "auto" and images_to_encode >= COMPILE_AUTO_MIN_IMAGES)
    if not wanted:
        return False
    if not hasattr(encoder, "compile_images"):
        logger.warning("%s: this adapter cannot compile its image tower; running eagerly", encoder.spec)
        return False
    encoder.compile_images()
    return True
