"""Steps 5 and 6: outliers (least typical images of a concept) and relevance (image vs prompts).

Outliers: the paper removed outliers with an ImageNet InceptionNet at high thresholds before
manual cleaning; here the score is an image's mean cosine similarity to the other images of
its concept under any ``--model`` encoder, and the bottom ``floor(fraction * n)`` of each
concept are dropped (ties broken by candidate id). Relevance: cosine similarity between the
image and the concept's prompt embedding (templates normalised, averaged, normalised).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from letitwag.builders.curate.steps import StepOutcome


def outliers(frame: pd.DataFrame, vectors: np.ndarray, fraction: float) -> StepOutcome:
    outcome = StepOutcome()
    scores = {}
    positions = {row: i for i, row in enumerate(frame.index)}
    for _, group in frame.groupby("concept_id", sort=True):
        n = len(group)
        if n < 2:
            continue
        block = vectors[[positions[r] for r in group.index]].astype(np.float64)
        mean_similarity = (block @ block.sum(axis=0) - np.einsum("ij,ij->i", block, block)) / (n - 1)
        scores.update(zip(group.index, mean_similarity))
        ranked = sorted(zip(mean_similarity, group["candidate_id"], group.index))
        for score, _, row in ranked[: math.floor(fraction * n)]:
            outcome.reject(row, f"outlier: mean similarity {score:.3f} in the bottom {fraction:.0%} of its concept")
    outcome.scores["outlier_score"] = {int(r): float(s) for r, s in scores.items()}
    return outcome


def relevance(frame: pd.DataFrame, vectors: np.ndarray, prompt_vectors: dict[str, np.ndarray],
              threshold: float) -> StepOutcome:
    outcome = StepOutcome()
    scores = {}
    for position, (row, concept) in enumerate(zip(frame.index, frame["concept_id"])):
        score = float(vectors[position] @ prompt_vectors[concept])
        scores[int(row)] = score
        if score < threshold:
            outcome.reject(row, f"irrelevant: similarity to the concept's prompts {score:.3f} < {threshold}")
    outcome.scores["relevance"] = scores
    return outcome


def concept_prompt_vectors(cache, concepts, prompt_set: str) -> dict[str, np.ndarray]:
    """One unit vector per concept: its prompts encoded, averaged, re-normalised."""
    from letitwag.data import read_bundled_json
    from letitwag.errors import UserInputError

    templates = read_bundled_json("templates.json")
    if prompt_set not in templates:
        raise UserInputError(f"unknown prompt set {prompt_set!r}; use one of {', '.join(sorted(templates))}")
    result = {}
    for concept in concepts:
        encoded = cache.texts([t.replace("{c}", concept.name) for t in templates[prompt_set]])
        mean = encoded.mean(axis=0)
        result[concept.id] = mean / np.linalg.norm(mean)
    return result


def run_embedding_step(step: str, frame: pd.DataFrame, curation) -> StepOutcome:
    """Dispatch the reference / outliers / relevance step of a ``Curation`` run."""
    if step == "reference":
        from letitwag.builders.curate.reference import reference_overlap

        return reference_overlap(frame, curation)
    config = curation.config
    vectors = curation.embeddings.rows(frame)
    if step == "outliers":
        return outliers(frame, vectors, config.outlier_fraction)
    present = [c for c in curation.concepts if c.id in set(frame["concept_id"])]
    return relevance(frame, vectors, concept_prompt_vectors(curation.embeddings, present, config.prompts),
                     config.relevance_threshold)
