"""T2I metrics from per-image predictions, shared by the harness and (later) the leaderboard.

Definitions:

- judge accuracy: every generated image is classified zero-shot among all concepts by the
  judge; ``judge_top1`` / ``judge_top5`` / ``judge_mean_per_class_recall``, their bootstrap CIs,
  ``per_class_accuracy`` and ``by_frequency_bin`` are ``harness.metrics.classification_metrics``
  with the image's concept as its label (so classification and T2I bin concepts identically).
- CLIPScore (HEIM): per prompt, ``expected`` = mean and ``max`` = maximum of the CLIPScores of
  its images that are not blacked out (0 when none is left); a concept's value is the mean over
  its prompts; ``expected_clip_score`` / ``max_clip_score`` are the means over all prompts
  (HEIM averages over prompt instances).
- retrieval (optional): ``retrieval_cmc@k`` = fraction of generated images whose own concept has a
  real image within the k most similar real images (``retrieval_rank <= k``); images of concepts
  without real images (rank 0) are left out and counted in ``retrieval_excluded``.
"""

from __future__ import annotations

import numpy as np

from letitwag.errors import UserInputError
from letitwag.harness.metrics import classification_metrics

RETRIEVAL_KS = (1, 2, 5)
_JUDGE_KEYS = ("top1", "top5", "mean_per_class_recall")


def _prompt_groups(prompt_ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Group index of each image's prompt, whatever ``prompt_ids`` is (ints, strings or [N, 2] pairs)."""
    prompt_ids = np.asarray(prompt_ids)
    _, inverse = np.unique(prompt_ids, axis=0 if prompt_ids.ndim > 1 else None, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse, int(inverse.max()) + 1 if inverse.size else 0


def _clip_metrics(concept_index, clip_score, prompt_ids, blacked_out, class_names) -> dict:
    group, num_prompts = _prompt_groups(prompt_ids)
    prompt_concept = np.full(num_prompts, -1, dtype=np.int64)
    prompt_concept[group] = concept_index
    if (prompt_concept[group] != concept_index).any():
        raise UserInputError("predictions: one prompt id is used by images of different concepts")
    scored = ~blacked_out
    expected = np.zeros(num_prompts)
    best = np.zeros(num_prompts)
    counts = np.bincount(group[scored], minlength=num_prompts)
    sums = np.bincount(group[scored], weights=clip_score[scored], minlength=num_prompts)
    np.divide(sums, counts, out=expected, where=counts > 0)
    np.maximum.at(best, group[scored], clip_score[scored])  # scores are >= 0, so 0 is the empty value
    per_concept = {}
    for concept in np.unique(prompt_concept):
        mask = prompt_concept == concept
        per_concept[class_names[concept]] = (float(expected[mask].mean()), float(best[mask].mean()))
    return {
        "num_prompts": num_prompts,
        "blacked_out_images": int(blacked_out.sum()),
        "expected_clip_score": float(expected.mean()),
        "max_clip_score": float(best.mean()),
        "per_class_clip_score": {name: values[0] for name, values in per_concept.items()},
        "per_class_max_clip_score": {name: values[1] for name, values in per_concept.items()},
    }


def _retrieval_metrics(concept_index, retrieval_rank, class_names) -> dict:
    ranks = np.asarray(retrieval_rank, dtype=np.int64).reshape(-1)
    if ranks.shape != concept_index.shape or (ranks < 0).any():
        raise UserInputError("predictions: retrieval_rank needs one value >= 0 per image (0: concept has no real image)")
    ranked = ranks > 0
    metrics: dict = {"retrieval_excluded": int((~ranked).sum())}
    for k in RETRIEVAL_KS:
        metrics[f"retrieval_cmc@{k}"] = float((ranks[ranked] <= k).mean()) if ranked.any() else None
    metrics["per_class_retrieval_cmc@1"] = {
        class_names[c]: float((ranks[(concept_index == c) & ranked] <= 1).mean())
        for c in np.unique(concept_index[ranked])
    }
    return metrics


def t2i_metrics(
    concept_index: np.ndarray,
    topk_ids: np.ndarray,
    clip_score: np.ndarray,
    prompt_ids: np.ndarray,
    class_names: list[str],
    *,
    blacked_out: np.ndarray | None = None,
    retrieval_rank: np.ndarray | None = None,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    frequency_counts: dict[str, dict[str, int]] | None = None,
) -> dict:
    """The ``metrics`` object of a ``t2i`` run (docs/FORMATS.md); one array row per generated image.

    ``prompt_ids`` identifies each image's prompt (e.g. ``[concept_index, prompt_index]`` pairs);
    ``blacked_out`` marks images left out of CLIPScore (default: none); ``retrieval_rank`` adds the
    CMC metrics. ``bootstrap_samples``/``seed``/``frequency_counts`` as in ``classification_metrics``.
    """
    concept_index = np.asarray(concept_index, dtype=np.int64).reshape(-1)
    clip_score = np.asarray(clip_score, dtype=np.float64).reshape(-1)
    blacked_out = np.zeros(len(concept_index), bool) if blacked_out is None else np.asarray(blacked_out, bool).reshape(-1)
    if not (len(clip_score) == len(blacked_out) == len(concept_index) == len(np.asarray(prompt_ids))):
        raise UserInputError("predictions: concept_index, clip_score, blacked_out and prompt ids differ in length")
    if not np.isfinite(clip_score).all() or (clip_score < 0).any():
        raise UserInputError("predictions: clip_score must be finite and >= 0 (CLIPScore is max(100 * cos, 0))")
    judged = classification_metrics(concept_index, topk_ids, class_names, bootstrap_samples=bootstrap_samples,
                                     seed=seed, frequency_counts=frequency_counts)
    metrics = {
        "num_images": judged["num_samples"],
        "num_concepts_generated": judged["num_classes_with_samples"],
        **{f"judge_{key}": judged[key] for key in _JUDGE_KEYS},
        "bootstrap": judged["bootstrap"],
        "per_class_accuracy": judged["per_class_accuracy"],
        "per_class_support": judged["per_class_support"],
        "by_frequency_bin": judged["by_frequency_bin"],
        "frequency_unmatched": judged["frequency_unmatched"],
        **_clip_metrics(concept_index, clip_score, prompt_ids, blacked_out, class_names),
    }
    if "ci95" in judged:
        metrics["ci95"] = {f"judge_{key}": judged["ci95"][key] for key in _JUDGE_KEYS}
    if retrieval_rank is not None:
        metrics.update(_retrieval_metrics(concept_index, retrieval_rank, class_names))
    return metrics
