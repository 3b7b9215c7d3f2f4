"""Judge the generated images: features, zero-shot class scores, CLIPScore, retrieval ranks.

Why from the saved PNGs: what is scored is exactly what a user can open, and a resumed run
scores reused and new images the same way. CLIPScore follows HEIM (Hessel et al. 2021 with
w = 100): ``max(100 * cos(image, prompt), 0)`` with the judge's unit embeddings.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from letitwag.harness.batching import AdaptiveBatcher

logger = logging.getLogger(__name__)

CLIP_SCORE_WEIGHT = 100.0


def image_features_from_files(encoder, paths: list[Path], batch_size: int, what: str = "generated images") -> np.ndarray:
    """``[N, D]`` unit image features of PNG files, in order (decoded in the main process: few, small files)."""
    import torch
    from PIL import Image
    from tqdm import tqdm

    batcher = AdaptiveBatcher(batch_size, what)
    pieces = []
    for start in tqdm(range(0, len(paths), batch_size), desc=f"judge: {what}", unit="batch", disable=len(paths) <= batch_size):
        pixels = []
        for path in paths[start : start + batch_size]:
            with Image.open(path) as image:
                pixels.append(encoder.preprocess(image.convert("RGB")))
        pieces.extend(part.cpu() for part in batcher.run(encoder.encode_images, torch.stack(pixels)))
    return torch.cat(pieces).numpy().astype(np.float32) if pieces else np.zeros((0, 0), np.float32)


def text_features(encoder, texts: list[str], batch_size: int) -> np.ndarray:
    """``[N, D]`` unit text features (prompts are truncated by the judge's tokenizer, as in HEIM)."""
    import torch

    batcher = AdaptiveBatcher(batch_size, "prompts")
    pieces = [part.cpu() for start in range(0, len(texts), batch_size)
              for part in batcher.run(encoder.encode_texts, texts[start : start + batch_size])]
    return torch.cat(pieces).numpy().astype(np.float32)


def clip_scores(image_features: np.ndarray, prompt_features: np.ndarray) -> np.ndarray:
    """Row-wise CLIPScore ``max(100 * cos, 0)`` of matching image and prompt unit vectors."""
    cosine = np.einsum("nd,nd->n", image_features.astype(np.float64), prompt_features.astype(np.float64))
    return np.maximum(CLIP_SCORE_WEIGHT * cosine, 0.0).astype(np.float32)


def retrieval_ranks(generated: np.ndarray, concept_index: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """1-based rank of the best-matching real image of the image's own concept; 0 if the concept has none.

    The gallery (real images of every concept) is ranked by cosine similarity to the generated
    image; rank = 1 + the number of real images strictly more similar than the most similar one of
    the same concept (ties resolved in the generated image's favour). CMC@k = fraction with rank <= k.
    """
    ranks = np.zeros(len(generated), dtype=np.int32)
    for concept in np.unique(concept_index):
        rows = np.flatnonzero(concept_index == concept)
        same = gallery_labels == concept
        if not same.any():
            continue
        for start in range(0, len(rows), 256):
            block = rows[start : start + 256]
            similarity = generated[block] @ gallery.T
            best_same = similarity[:, same].max(axis=1)
            ranks[block] = 1 + (similarity > best_same[:, None]).sum(axis=1)
    return ranks


def feature_dimension(encoder) -> int:
    """The image-embedding width, from one blank image (works for image-only judges too)."""
    import torch
    from PIL import Image

    pixels = torch.stack([encoder.preprocess(Image.new("RGB", (64, 64)))])
    return int(encoder.encode_images(pixels).shape[1])
