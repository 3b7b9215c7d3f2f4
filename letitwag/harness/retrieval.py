"""Zero-shot image-text retrieval: captions and images -> features -> ranks of the positives -> recall@k.

Every caption queries the images (its positive: its own image) and every image queries the
captions (its positives: its captions), over the cosine similarity of the unit features, as
CLIP_benchmark's ``zeroshot_retrieval`` does. Image features and caption embeddings are computed
in resumable cached chunks; the run keeps, per caption, the rank of its image for it and its rank
for its image (``predictions.parquet``), from which ``retrieval_metrics`` computes recall@1/5/10
in both directions, bootstrap CIs and per-concept recall. Captions are tagged with the
dataset's concepts by the frequency engine's matcher (``caption_concepts``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import numpy as np

from letitwag.errors import UserInputError
from letitwag.harness.caption_concepts import resolve_concept_list, tag_captions
from letitwag.harness.captions import CaptionDataset, open_caption_dataset
from letitwag.harness.features import (apply_compile_option, caption_features, feature_profile, image_features,
                                       resolve_image_decode, select_indices)
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.retrieval_metrics import PAPER_MIN_CONCEPT_IMAGES, retrieval_metrics
from letitwag.harness.streams import resolve_streams
from letitwag.models.base import ModelOutputError

logger = logging.getLogger(__name__)

# Similarity entries computed at once while ranking (~32 MB of float32 per block).
_RANK_BLOCK_ELEMENTS = 1 << 23


def positive_ranks(image_features: np.ndarray, caption_features: np.ndarray,
                   caption_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per caption: the rank of its image among all images for it, and its rank among all captions
    for its image (1 + the number of candidates scored strictly higher).

    ``caption_image`` (each caption's image row in ``image_features``) must be non-decreasing, as
    captions are stored image by image. Similarities are computed in blocks, never as one
    captions x images matrix.
    """
    import torch

    images, texts = torch.from_numpy(image_features), torch.from_numpy(caption_features)
    owner = torch.from_numpy(np.ascontiguousarray(caption_image, dtype=np.int64))
    num_images, num_captions = images.shape[0], texts.shape[0]
    text_to_image = torch.empty(num_captions, dtype=torch.int64)
    block = max(1, _RANK_BLOCK_ELEMENTS // max(num_images, 1))
    for start in range(0, num_captions, block):
        scores = texts[start : start + block] @ images.T
        positive = scores.gather(1, owner[start : start + block, None])
        text_to_image[start : start + block] = 1 + (scores > positive).sum(dim=1)
    image_to_text = torch.empty(num_captions, dtype=torch.int64)
    per_image = max(1, num_captions // max(num_images, 1))
    block = max(1, _RANK_BLOCK_ELEMENTS // max(num_captions * per_image, 1))
    bounds = np.searchsorted(caption_image, np.arange(0, num_images + block, block))
    for number, start in enumerate(range(0, num_images, block)):
        first, last = int(bounds[number]), int(bounds[number + 1])
        if first == last:
            continue
        scores = images[start : start + block] @ texts.T
        rows = owner[first:last] - start
        positive = scores[rows, torch.arange(first, last)]
        image_to_text[first:last] = 1 + (scores[rows] > positive[:, None]).sum(dim=1)
    return text_to_image.numpy(), image_to_text.numpy()


def retrieval_fingerprint(data: CaptionDataset, image_positions: np.ndarray, hashes: np.ndarray,
                          caption_ids: np.ndarray) -> str:
    """sha256 of (id, revision, split, evaluated image rows + content hashes, their captions), docs/FORMATS.md."""
    digest = hashlib.sha256(f"{data.source}\n{data.revision}\n{data.split}\n".encode())
    digest.update(np.ascontiguousarray(data.image_rows[image_positions], dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(hashes).tobytes())
    digest.update(json.dumps([data.captions[i] for i in caption_ids.tolist()], ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def new_profile() -> dict:
    """Seconds per phase of a retrieval run, and what was encoded (results.json ``profile``)."""
    return {"dataset": 0.0, "caption_features": 0.0, "image_features": 0.0, **feature_profile(), "ranking": 0.0,
            "concepts": 0.0, "metrics": 0.0, "captions_encoded": 0}


def _timed(profile: dict, phase: str, step):
    started = time.perf_counter()
    result = step()
    profile[phase] += time.perf_counter() - started
    return result


def run(options: EvaluationOptions, encoder) -> tuple[dict, dict]:
    """Evaluate ``encoder`` on image-text retrieval; returns (results fields, predictions columns)."""
    import torch

    torch.manual_seed(options.seed)
    extra = options.extra
    profile = new_profile()
    data = _timed(profile, "dataset", lambda: open_caption_dataset(
        options.dataset, split=options.split, revision=options.dataset_revision, image_column=options.image_column,
        caption_column=extra.get("caption_column"), image_id_column=extra.get("image_id_column"),
        captions_per_image=extra.get("captions_per_image"),
    ))
    concepts = resolve_concept_list(extra.get("concepts"), options.dataset)
    cache_root = options.resolved_cache_dir()
    captioned = np.unique(data.caption_image)
    images = captioned[select_indices(len(captioned), options.limit, options.seed)]
    chosen_captions = np.flatnonzero(np.isin(data.caption_image, images))
    compiled = apply_compile_option(encoder, extra.get("compile", "off"), len(images))
    streams = resolve_streams(options.cpu_streams, encoder.device, compiled)
    decode = resolve_image_decode(options, encoder)

    texts, caption_cache = _timed(profile, "caption_features", lambda: caption_features(
        encoder, [data.captions[i] for i in chosen_captions.tolist()], options, cache_root,
        resolve_streams(options.cpu_streams, encoder.device, compiled=False), profile))
    merged, image_cache = _timed(profile, "image_features", lambda: image_features(
        encoder, data, images, options, cache_root, texts.shape[1], profile, streams, decode))
    if texts.shape[1] != merged["features"].shape[1]:
        raise ModelOutputError(f"{encoder.spec}: image features have dimension {merged['features'].shape[1]} "
                               f"but text features {texts.shape[1]}")
    decoded = merged["indices"][merged["ok"]]
    if len(decoded) == 0:
        raise UserInputError(f"dataset {options.dataset!r}: no image could be decoded")
    kept = np.isin(data.caption_image[chosen_captions], decoded)
    caption_ids = chosen_captions[kept]
    row_of_image = np.full(int(data.caption_image.max()) + 1, -1, dtype=np.int64)
    row_of_image[decoded] = np.arange(len(decoded))
    t2i, i2t = _timed(profile, "ranking", lambda: positive_ranks(
        merged["features"][merged["ok"]], texts[kept], row_of_image[data.caption_image[caption_ids]]))

    captions = [data.captions[i] for i in caption_ids.tolist()]
    tagged, matcher = _timed(profile, "concepts", lambda: tag_captions(captions, concepts) if concepts is not None
                             else (None, None))
    image_index = data.image_rows[data.caption_image[caption_ids]]
    min_images = extra.get("min_concept_images", PAPER_MIN_CONCEPT_IMAGES)
    metrics = _timed(profile, "metrics", lambda: retrieval_metrics(
        image_index, t2i, i2t, tagged, bootstrap_samples=options.bootstrap_samples, seed=options.seed,
        min_concept_images=min_images))
    corrupt = merged["indices"][~merged["ok"]]
    if len(corrupt):
        logger.warning("skipped %d images that could not be decoded, and their %d captions", len(corrupt),
                       int((~kept).sum()))
    fields = {
        "dataset": {
            "id": options.dataset, "split": data.split, "revision": data.revision, "layout": data.layout,
            "fingerprint": retrieval_fingerprint(data, decoded, merged["hashes"][merged["ok"]], caption_ids),
            "num_images_total": data.num_images, "num_captions_total": len(data.captions),
            "num_images": int(len(decoded)), "num_captions": int(len(caption_ids)),
            "captions_per_image": extra.get("captions_per_image"), "image_column": data.image_column,
            "caption_column": data.caption_column, "image_id_column": data.image_id_column,
        },
        "concepts": None if concepts is None else {
            "list": concepts.name, "num_concepts": len(concepts), "matcher": matcher,
            "captions_with_a_concept": int(sum(bool(t) for t in tagged)),
        },
        "metrics": metrics,
        "skipped_samples": {"corrupt_image": int(len(corrupt)), "captions_of_corrupt_images": int((~kept).sum()),
                            "images_without_captions": int(data.num_images - len(captioned))},
        "skipped_sample_indices": data.image_rows[corrupt].tolist(),
        "decode": decode.describe(),
        "cache": {"caption_features": caption_cache, "image_features": image_cache},
        "profile": {"seconds": {k: round(v, 4) for k, v in profile.items()
                                if k not in ("images_encoded", "captions_encoded")},
                    "images_encoded": profile["images_encoded"], "captions_encoded": profile["captions_encoded"],
                    "image_tower_compiled": compiled, "image_streams": streams},
    }
    predictions = {
        "caption_index": caption_ids, "image_index": image_index,
        "caption_position": data.caption_position[caption_ids], "caption": captions,
        "text_to_image_rank": t2i, "image_to_text_rank": i2t,
        "concepts": tagged,
    }
    return fields, predictions
