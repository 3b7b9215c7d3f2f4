"""Retrieval metrics from per-caption ranks, shared by the harness, the analysis and the leaderboard.

Definitions (CLIP papers, CLIP_benchmark's ``zeroshot_retrieval``): every caption is a
text->image query whose one positive is its image; every image with at least one caption is an
image->text query whose positives are all its captions. Recall@k is the share of queries with a
positive among the k best-scored candidates. CLIP_benchmark calls text->image recall
``image_retrieval_recall@k`` and image->text recall ``text_retrieval_recall@k``.

Everything is computed from ``predictions.parquet`` alone (one row per caption, see
docs/FORMATS.md): ``text_to_image_rank`` is the rank of the caption's image for that caption,
``image_to_text_rank`` the rank of the caption for its image (1 = best; a rank counts the
candidates scored strictly higher, plus one). A text->image query hits at k when its rank <= k;
an image->text query when its best caption rank <= k.

Per concept (the paper's ``retrieval_eval.py``): a caption carries the concepts matched in it,
an image the union of its captions' concepts; a concept's recall@k is the mean hit of the
captions (text->image) or images (image->text) carrying it. The paper kept concepts carried by
at least 10 images; ``min_concept_images`` sets that threshold, and concepts below it are listed,
never dropped silently. Confidence intervals: a seeded percentile bootstrap over queries
(captions for text->image, images for image->text).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from letitwag.errors import UserInputError
from letitwag.harness.metrics import CI_LEVEL, accuracy_by_frequency_bin
from letitwag.tables import paper_counts_by_corpus

RECALL_K = (1, 5, 10)
DIRECTIONS = ("text_to_image", "image_to_text")
PAPER_MIN_CONCEPT_IMAGES = 10
_BOOTSTRAP_BATCH_ELEMENTS = 1 << 22


def metric_names() -> list[str]:
    """``text_to_image_recall@1`` ... ``image_to_text_recall@10``: the keys every retrieval metric uses."""
    return [f"{direction}_recall@{k}" for direction in DIRECTIONS for k in RECALL_K]


def best_rank_per_image(image_index: np.ndarray, image_to_text_rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct images in ascending order, each one's best caption rank): the image->text queries."""
    order = np.argsort(image_index, kind="stable")
    sorted_images = image_index[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_images[1:] != sorted_images[:-1]]))
    return sorted_images[starts], np.minimum.reduceat(image_to_text_rank[order], starts)


def _bootstrap(ranks: np.ndarray, samples: int, rng: np.random.Generator) -> dict[int, list[float]]:
    """Percentile intervals of recall@k over resampled queries, for every k at once."""
    n = len(ranks)
    values = np.empty((samples, len(RECALL_K)))
    batch = max(1, _BOOTSTRAP_BATCH_ELEMENTS // n)
    for start in range(0, samples, batch):
        drawn = ranks[rng.integers(0, n, (min(batch, samples - start), n))]
        for column, k in enumerate(RECALL_K):
            values[start : start + len(drawn), column] = np.count_nonzero(drawn <= k, axis=1) / n
    low, high = np.percentile(values, [100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2], axis=0)
    return {k: [float(low[i]), float(high[i])] for i, k in enumerate(RECALL_K)}


def _validate(image_index, text_to_image_rank, image_to_text_rank, concepts) -> tuple:
    image_index = np.asarray(image_index, dtype=np.int64).reshape(-1)
    t2i = np.asarray(text_to_image_rank, dtype=np.int64).reshape(-1)
    i2t = np.asarray(image_to_text_rank, dtype=np.int64).reshape(-1)
    if not (len(image_index) == len(t2i) == len(i2t)) or (concepts is not None and len(concepts) != len(t2i)):
        raise UserInputError("predictions: image_index, the two rank columns and concepts must have one value per caption")
    if len(t2i) == 0:
        raise UserInputError("predictions: no captions to score")
    if t2i.min() < 1 or i2t.min() < 1:
        raise UserInputError("predictions: ranks start at 1 (1 = the best-scored candidate)")
    return image_index, t2i, i2t


def _per_concept(concepts: Sequence[Sequence[str]], image_index: np.ndarray, t2i: np.ndarray,
                 images: np.ndarray, best: np.ndarray) -> tuple[dict, dict]:
    """Per concept: recall@k of its captions (text->image) and of its images (image->text), and supports."""
    caption_rows: dict[str, list[int]] = {}
    image_sets: dict[str, set[int]] = {}
    for row, tagged in enumerate(concepts):
        for concept in tagged:
            caption_rows.setdefault(concept, []).append(row)
            image_sets.setdefault(concept, set()).add(int(image_index[row]))
    position = {int(image): i for i, image in enumerate(images)}
    recalls, support = {}, {}
    for concept in sorted(caption_rows):
        caption_ranks = t2i[caption_rows[concept]]
        image_ranks = best[[position[image] for image in image_sets[concept]]]
        recalls[concept] = {
            **{f"text_to_image_recall@{k}": float(np.mean(caption_ranks <= k)) for k in RECALL_K},
            **{f"image_to_text_recall@{k}": float(np.mean(image_ranks <= k)) for k in RECALL_K},
        }
        support[concept] = {"captions": len(caption_ranks), "images": len(image_ranks)}
    return recalls, support


def retrieval_metrics(
    image_index: np.ndarray,
    text_to_image_rank: np.ndarray,
    image_to_text_rank: np.ndarray,
    concepts: Sequence[Sequence[str]] | None = None,
    *,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    min_concept_images: int = PAPER_MIN_CONCEPT_IMAGES,
    frequency_counts: Mapping[str, Mapping[str, int]] | None = None,
) -> dict:
    """The ``metrics`` object of a retrieval run (docs/FORMATS.md), every recall a fraction in [0, 1].

    One value per caption in each argument: its image (any integer id), its two ranks, and the
    concept ids matched in it (None: no per-concept metrics). ``frequency_counts`` maps corpus ->
    {concept id: count}; by default the bundled paper tables (``matched`` counts).
    """
    image_index, t2i, i2t = _validate(image_index, text_to_image_rank, image_to_text_rank, concepts)
    images, best = best_rank_per_image(image_index, i2t)
    metrics: dict = {"num_captions": int(len(t2i)), "num_images": int(len(images))}
    for direction, ranks in zip(DIRECTIONS, (t2i, best)):
        for k in RECALL_K:
            metrics[f"{direction}_recall@{k}"] = float(np.mean(ranks <= k))
        metrics[f"{direction}_median_rank"] = float(np.median(ranks))
    metrics["bootstrap"] = {"samples": bootstrap_samples, "seed": seed, "level": CI_LEVEL,
                            "resampled": {"text_to_image": "captions", "image_to_text": "images"}}
    if bootstrap_samples > 0:
        rng = np.random.default_rng(seed)
        metrics["ci95"] = {}
        for direction, ranks in zip(DIRECTIONS, (t2i, best)):
            for k, interval in _bootstrap(ranks, bootstrap_samples, rng).items():
                metrics["ci95"][f"{direction}_recall@{k}"] = interval
    if concepts is None:
        return metrics
    recalls, support = _per_concept(concepts, image_index, t2i, images, best)
    kept = {concept: values for concept, values in recalls.items() if support[concept]["images"] >= min_concept_images}
    if frequency_counts is None:
        frequency_counts = paper_counts_by_corpus()
    by_bin, unmatched = {}, {}
    for name in metric_names():
        queries = "captions" if name.startswith("text_to_image") else "images"
        by_bin[name], unmatched = accuracy_by_frequency_bin(
            {concept: values[name] for concept, values in kept.items()},
            {concept: support[concept][queries] for concept in kept}, frequency_counts, value_name="recall")
    metrics.update({
        "min_concept_images": min_concept_images,
        "per_concept": kept,
        "concept_support": support,
        "concepts_below_min_images": sorted(set(recalls) - set(kept)),
        "by_frequency_bin": by_bin,
        "frequency_unmatched": unmatched,
    })
    return metrics


def retrieval_metrics_from_predictions(path, **options) -> dict:
    """``retrieval_metrics`` recomputed from a run's ``predictions.parquet`` alone (the leaderboard's check)."""
    from letitwag.harness.results import read_retrieval_predictions

    columns = read_retrieval_predictions(path)
    return retrieval_metrics(columns["image_index"], columns["text_to_image_rank"], columns["image_to_text_rank"],
                             columns["concepts"], **options)
