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

from letitwag.concept_map import class_concept_map
from letitwag.errors import UserInputError
from letitwag.harness.batching import AdaptiveBatcher
from letitwag.harness.cache import ClassifierCache, model_identity
from letitwag.harness.data import EvalDataset, open_dataset
from letitwag.harness.features import (apply_compile_option, feature_profile, image_features, resolve_image_decode,
                                       select_indices)
from letitwag.harness.metrics import TOP_K, classification_metrics
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.prompts import PromptSet, resolve_prompts
from letitwag.harness.streams import resolve_streams
from letitwag.io import text_sha256

logger = logging.getLogger(__name__)


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


def new_profile() -> dict:
    """Seconds per phase of a run (and images encoded), reported in results.json ``profile``."""
    return {"classifier": 0.0, "image_features": 0.0, **feature_profile(), "metrics": 0.0}


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
    prompts = resolve_prompts(options.prompts, data.templates, options.dataset)
    cache_root = options.resolved_cache_dir()
    profile = new_profile()
    clock = time.perf_counter()
    classifier, classifier_cache = _classifier(encoder, data, prompts, options, cache_root)
    profile["classifier"] = time.perf_counter() - clock
    indices = select_indices(data.num_rows, options.limit, options.seed)
    compiled = apply_compile_option(encoder, options.extra.get("compile", "off"), len(indices))
    streams = resolve_streams(options.cpu_streams, encoder.device, compiled)
    decode = resolve_image_decode(options, encoder)
    clock = time.perf_counter()
    merged, feature_cache = image_features(encoder, data, indices, options, cache_root, classifier.shape[1], profile,
                                           streams, decode)
    profile["image_features"] = time.perf_counter() - clock
    clock = time.perf_counter()
    valid_label = (merged["labels"] >= 0) & (merged["labels"] < len(data.class_ids))
    keep = merged["ok"] & valid_label
    if not keep.any():
        raise UserInputError(f"dataset {options.dataset!r}: no sample has a decodable image and a valid label")
    k = min(TOP_K, len(data.class_ids))
    topk_ids, topk_scores = predict_topk(merged["features"][keep], classifier, encoder.logit_scale, k)
    labels = merged["labels"][keep]
    class_map = class_concept_map(data.class_ids, options.dataset, options.extra.get("concepts"))
    if class_map is not None and class_map.unmapped:
        logger.warning("%d class(es) are none of the paper's '%s' concepts, so they have no pretraining frequency: "
                       "%s", len(class_map.unmapped), class_map.concept_list, ", ".join(class_map.unmapped[:10]))
    metrics = classification_metrics(
        labels, topk_ids, data.class_ids, bootstrap_samples=options.bootstrap_samples, seed=options.seed,
        class_concepts=class_map.class_concepts if class_map is not None else None,
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
            "concepts": class_map.to_json() if class_map is not None else None,
        },
        "prompts": {"set": prompts.name, "hash": prompts.hash, "num_templates": len(prompts.templates)},
        "metrics": metrics,
        "skipped_samples": skipped,
        "skipped_sample_indices": merged["indices"][~keep].tolist(),
        "decode": decode.describe(),
        "cache": {"classifier": classifier_cache, "image_features": feature_cache},
        "classifier_sha256": hashlib.sha256(classifier.tobytes()).hexdigest(),
        "profile": {"seconds": {k: round(v, 4) for k, v in profile.items() if k != "images_encoded"},
                    "images_encoded": profile["images_encoded"], "image_tower_compiled": compiled,
                    "image_streams": streams},
    }
    predictions = {"sample_index": merged["indices"][keep], "label": labels.astype(np.int32),
                   "topk_ids": topk_ids, "topk_scores": topk_scores}
    return fields, predictions
