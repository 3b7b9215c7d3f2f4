"""Zero-shot classification: class prompts -> classifier, images -> features -> top-k -> metrics.

The classifier is built by normalise-average-normalise over each class's prompt embeddings
(the recipe of CLIP / open_clip / CLIP_benchmark), then cached. Image features are computed
in resumable cached chunks (``cache.FeatureChunkStore``); predictions are the top-k classes by
``logit_scale * cosine``.
"""

from __future__ import annotations

import hashlib
import logging
import time

import numpy as np

from letitwag.errors import UserInputError
from letitwag.harness.batching import AdaptiveBatcher
from letitwag.harness.cache import ClassifierCache, FeatureChunkStore, model_identity
from letitwag.harness.data import EvalDataset, open_dataset
from letitwag.harness.images import ImageRows, collate_rows, decode_worker_init
from letitwag.harness.metrics import TOP_K, classification_metrics
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.prompts import PromptSet, load_prompts
from letitwag.harness.streams import OrderedStreams, intra_op_threads, resolve_streams, threads_per_stream
from letitwag.io import text_sha256
from letitwag.models.base import ModelOutputError

logger = logging.getLogger(__name__)

COMPILE_AUTO_MIN_IMAGES = 20_000


def build_classifier(encoder, prompt_names: list[str], prompts: PromptSet, batch_size: int) -> np.ndarray:
    """``[classes, D]`` unit vectors: each class's prompt embeddings averaged, then re-normalised."""
    import torch
    from tqdm import tqdm

    texts = [text for name in prompt_names for text in prompts.texts(name)]
    batcher = AdaptiveBatcher(batch_size, "class prompts")
    starts = range(0, len(texts), batch_size)
    pieces = []
    for start in tqdm(starts, desc="class prompts", unit="batch", disable=len(starts) < 2):
        pieces.extend(batcher.run(encoder.encode_texts, texts[start : start + batch_size]))
    embeddings = torch.cat(pieces).reshape(len(prompt_names), len(prompts.templates), -1)
    weights = torch.nn.functional.normalize(embeddings.mean(dim=1), dim=-1)
    return weights.cpu().numpy().astype(np.float32)


def select_indices(num_rows: int, limit: int | None, seed: int) -> np.ndarray:
    """All rows, or a seeded random subset of ``limit`` rows in row order (``--limit``)."""
    if limit is None or limit >= num_rows:
        return np.arange(num_rows, dtype=np.int64)
    if limit <= 0:
        raise UserInputError(f"--limit must be positive, got {limit}")
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=limit, replace=False)).astype(np.int64)


def _encode_chunks(encoder, data: EvalDataset, store: FeatureChunkStore, missing: list[int], options, dim: int,
                   profile: dict, streams: int = 1):
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
    rows = ImageRows(data.dataset, data.image_column, data.label_column, store.indices, encoder.preprocess)
    loader = torch.utils.data.DataLoader(
        rows, batch_sampler=batches, num_workers=options.workers, collate_fn=collate_rows,
        pin_memory=str(encoder.device).startswith("cuda"),
        worker_init_fn=decode_worker_init if options.workers else None,
        prefetch_factor=4 if options.workers else None,
    )
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


def image_features(encoder, data: EvalDataset, indices: np.ndarray, options, cache_root, dim: int,
                   profile: dict | None = None, streams: int | None = None) -> tuple[dict, dict]:
    """Features and bookkeeping for every selected sample, reusing cached chunks.

    ``streams``: batches encoded at once (default: ``options.cpu_streams`` resolved for the
    encoder's device, see ``letitwag.harness.streams``)."""
    profile = profile if profile is not None else new_profile()
    store = FeatureChunkStore(cache_root, model_identity(encoder), data.cache_identity, indices, options.chunk_size)
    chunks: dict[int, dict] = {}
    for chunk in range(store.num_chunks):
        cached = store.load(chunk)
        if cached is not None:
            chunks[chunk] = cached
    missing = [c for c in range(store.num_chunks) if c not in chunks]
    logger.info("image features: %d chunks cached, %d to compute", len(chunks), len(missing))
    if missing:
        if streams is None:
            streams = resolve_streams(options.cpu_streams, encoder.device, compiled=False)
        for chunk, arrays in _encode_chunks(encoder, data, store, missing, options, dim, profile, streams):
            chunks[chunk] = arrays
    merged = {name: np.concatenate([chunks[c][name] for c in range(store.num_chunks)])
              for name in ("indices", "labels", "hashes", "ok", "features")}
    cache_info = {"chunks_reused": store.num_chunks - len(missing), "chunks_computed": len(missing),
                  "folder": str(store.folder) if store.folder else None}
    return merged, cache_info


def new_profile() -> dict:
    """Seconds per phase of a run (and images encoded), reported in results.json ``profile``."""
    return {"classifier": 0.0, "image_features": 0.0, "data_wait": 0.0, "forward": 0.0, "first_forward": 0.0,
            "metrics": 0.0, "images_encoded": 0}


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


def predict_topk(features: np.ndarray, classifier: np.ndarray, logit_scale: float, k: int, rows: int = 8192):
    """Top-k class ids and scores (``logit_scale * cosine``), best first."""
    import torch

    weights = torch.from_numpy(classifier)
    ids, scores = [], []
    for start in range(0, len(features), rows):
        logits = logit_scale * (torch.from_numpy(features[start : start + rows]) @ weights.T)
        top = logits.topk(k, dim=1)
        ids.append(top.indices.numpy().astype(np.int32))
        scores.append(top.values.numpy().astype(np.float32))
    if not ids:
        return np.zeros((0, k), np.int32), np.zeros((0, k), np.float32)
    return np.concatenate(ids), np.concatenate(scores)


def dataset_fingerprint(data: EvalDataset, indices: np.ndarray, labels: np.ndarray, hashes: np.ndarray) -> str:
    """sha256 of (id, revision, split, per-sample index + label + content hash), as in docs/FORMATS.md."""
    digest_ = hashlib.sha256(f"{data.source}\n{data.revision}\n{data.split}\n".encode())
    digest_.update(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    digest_.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    digest_.update(np.ascontiguousarray(hashes).tobytes())
    return digest_.hexdigest()


def _classifier(encoder, data: EvalDataset, prompts: PromptSet, options, cache_root) -> tuple[np.ndarray, str]:
    cache = ClassifierCache(cache_root)
    path = cache.path(model_identity(encoder), prompts.hash, data.prompt_names)
    weights = cache.load(path)
    if weights is not None and weights.shape[0] == len(data.prompt_names):
        return weights, "reused"
    weights = build_classifier(encoder, data.prompt_names, prompts, options.batch_size)
    cache.save(path, weights)
    return weights, "computed"


def run(options: EvaluationOptions, encoder) -> tuple[dict, dict]:
    """Evaluate ``encoder``; returns (results fields, predictions columns)."""
    import torch

    torch.manual_seed(options.seed)
    data = open_dataset(
        options.dataset, split=options.split, image_column=options.image_column, label_column=options.label_column,
        classnames_file=options.classnames, revision=options.dataset_revision,
    )
    prompts = load_prompts(options.prompts)
    cache_root = options.resolved_cache_dir()
    profile = new_profile()
    clock = time.perf_counter()
    classifier, classifier_cache = _classifier(encoder, data, prompts, options, cache_root)
    profile["classifier"] = time.perf_counter() - clock
    indices = select_indices(data.num_rows, options.limit, options.seed)
    compiled = apply_compile_option(encoder, options.extra.get("compile", "off"), len(indices))
    streams = resolve_streams(options.cpu_streams, encoder.device, compiled)
    clock = time.perf_counter()
    merged, feature_cache = image_features(encoder, data, indices, options, cache_root, classifier.shape[1], profile,
                                           streams)
    profile["image_features"] = time.perf_counter() - clock
    clock = time.perf_counter()
    valid_label = (merged["labels"] >= 0) & (merged["labels"] < len(data.class_ids))
    keep = merged["ok"] & valid_label
    if not keep.any():
        raise UserInputError(f"dataset {options.dataset!r}: no sample has a decodable image and a valid label")
    k = min(TOP_K, len(data.class_ids))
    topk_ids, topk_scores = predict_topk(merged["features"][keep], classifier, encoder.logit_scale, k)
    labels = merged["labels"][keep]
    metrics = classification_metrics(
        labels, topk_ids, data.class_ids, bootstrap_samples=options.bootstrap_samples, seed=options.seed
    )
    profile["metrics"] = time.perf_counter() - clock
    skipped = {"corrupt_image": int((~merged["ok"]).sum()), "missing_label": int((merged["ok"] & ~valid_label).sum())}
    if skipped["corrupt_image"] or skipped["missing_label"]:
        logger.warning("skipped %d samples with corrupt images and %d without a valid label",
                       skipped["corrupt_image"], skipped["missing_label"])
    fields = {
        "dataset": {
            "id": options.dataset, "split": data.split, "revision": data.revision,
            "fingerprint": dataset_fingerprint(data, merged["indices"], merged["labels"], merged["hashes"]),
            "num_rows": data.num_rows, "num_samples": int(len(indices)), "num_evaluated": int(keep.sum()),
            "num_classes": len(data.class_ids), "class_names": data.class_ids, "prompt_names": data.prompt_names,
            "class_list_hash": text_sha256("\n".join(data.class_ids)),
            "image_column": data.image_column, "label_column": data.label_column,
        },
        "prompts": {"set": prompts.name, "hash": prompts.hash, "num_templates": len(prompts.templates)},
        "metrics": metrics,
        "skipped_samples": skipped,
        "skipped_sample_indices": merged["indices"][~keep].tolist(),
        "cache": {"classifier": classifier_cache, "image_features": feature_cache},
        "classifier_sha256": hashlib.sha256(classifier.tobytes()).hexdigest(),
        "profile": {"seconds": {k: round(v, 4) for k, v in profile.items() if k != "images_encoded"},
                    "images_encoded": profile["images_encoded"], "image_tower_compiled": compiled,
                    "image_streams": streams},
    }
    predictions = {"sample_index": merged["indices"][keep], "label": labels.astype(np.int32),
                   "topk_ids": topk_ids, "topk_scores": topk_scores}
    return fields, predictions
