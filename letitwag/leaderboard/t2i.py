"""Text-to-image submissions: identity, judge, predictions and metrics, checked like classification.

A T2I run (docs/FORMATS.md, "Text-to-image results") has no ground-truth labels to compare: its
evidence is one row per generated image with the judge's top-k concepts, the CLIPScore and the
optional retrieval rank. The board checks that the run covers the board's dataset (every
concept, every one of its prompts, every image index, once), that each row's seed follows the
harness's seed rule and its prompts hash to the claimed ``all_prompts_hash``, and recomputes
every metric with the harness's own ``t2i_metrics``.

Why the judge is part of an entry's identity: judge accuracy and CLIPScore are measured by a
model, so two T2I numbers are only comparable when the same judge (same spec, same judge
prompts, same retrieval judge) measured both. The site groups the T2I table by ``judge_label``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from letitwag.leaderboard.predictions import check_topk, integer_column, list_column, read_table
from letitwag.leaderboard.submission import SubmissionRejected, clean_text, require, short_repr

# The fields of a t2i run's ``dataset`` that must equal the board's (a t2i run has no samples).
T2I_DATASET_IDENTITY = ("id", "split", "revision", "num_classes", "class_list_hash")
T2I_COLUMNS = ("concept_index", "concept_id", "prompt_index", "prompt", "image_index", "seed", "blacked_out",
               "topk_ids", "topk_scores", "clip_score", "retrieval_rank")


def check_t2i_identity(results: dict[str, Any], expected: dict[str, Any], where: Path) -> None:
    """Same dataset (id, split, revision, classes) as the board; its retrieval gallery, if any, too."""
    dataset = require(results, "dataset", dict, where)
    for field in T2I_DATASET_IDENTITY:
        if dataset.get(field) != expected[field]:
            raise SubmissionRejected(f"{where}: dataset.{field} is {short_repr(dataset.get(field))} but this board "
                                     f"is for {expected[field]!r}; evaluate on the board's dataset revision")
    if dataset.get("class_names") != expected["class_names"]:
        raise SubmissionRejected(f"{where}: dataset.class_names differ from the board's {expected['num_classes']} "
                                 "classes (names or order)")
    if dataset.get("num_concepts_selected") != expected["num_classes"]:
        raise SubmissionRejected(f"{where}: dataset.num_concepts_selected is "
                                 f"{short_repr(dataset.get('num_concepts_selected'))}; every one of the board's "
                                 f"{expected['num_classes']} concepts must be generated")
    fingerprint = dataset.get("fingerprint")
    if fingerprint is not None and fingerprint != expected["fingerprint"]:
        raise SubmissionRejected(f"{where}: dataset.fingerprint (the retrieval gallery) is {short_repr(fingerprint)} "
                                 f"but this board's dataset is {expected['fingerprint']!r}; retrieve against the "
                                 "board's dataset revision")
    retrieval = results.get("retrieval")
    if retrieval is not None and (not isinstance(retrieval, dict) or retrieval.get("gallery_fingerprint") != fingerprint
                                  or fingerprint is None):
        raise SubmissionRejected(f"{where}: retrieval.gallery_fingerprint must equal dataset.fingerprint")


def _judge_spec(judge: Any, field: str, where: Path) -> dict[str, Any]:
    if not isinstance(judge, dict):
        raise SubmissionRejected(f"{where}: {field} must be an object with the judge's metadata")
    if judge.get("random_weights") is not False:
        raise SubmissionRejected(f"{where}: {field}.random_weights must be false; a random-weight judge measures "
                                 "nothing")
    return judge


def judge_label(results: dict[str, Any], where: Path) -> str:
    """The judge (spec, revision, judge prompts, retrieval judge) as one sanitised display string."""
    judge = _judge_spec(require(results, "judge", dict, where), "judge", where)
    spec = clean_text(judge.get("spec"), "judge.spec", str(where))
    prompts = clean_text(judge.get("prompts"), "judge.prompts", str(where))
    label = f"{spec} (judge prompts: {prompts})"
    if judge.get("revision"):
        label = f"{spec}@{clean_text(judge['revision'], 'judge.revision', str(where))} (judge prompts: {prompts})"
    retrieval = results.get("retrieval")
    if retrieval is not None:
        other = _judge_spec(retrieval.get("judge") if isinstance(retrieval, dict) else None, "retrieval.judge", where)
        label += f"; retrieval: {clean_text(other.get('spec'), 'retrieval.judge.spec', str(where))}"
    return label


@dataclass(frozen=True)
class T2IPredictions:
    """What ``t2i_metrics`` needs, one row per generated image, checked."""

    concept_index: np.ndarray
    topk_ids: np.ndarray
    clip_score: np.ndarray
    prompt_ids: np.ndarray
    blacked_out: np.ndarray
    retrieval_rank: np.ndarray | None

    def metric_inputs(self) -> dict[str, Any]:
        inputs = {"concept_index": self.concept_index, "topk_ids": self.topk_ids, "clip_score": self.clip_score,
                  "prompt_ids": self.prompt_ids, "blacked_out": self.blacked_out}
        if self.retrieval_rank is not None:
            inputs["retrieval_rank"] = self.retrieval_rank
        return inputs


def _strings(table: pa.Table, name: str, path: Path) -> list[str]:
    column = table.column(name)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) or column.null_count:
        raise SubmissionRejected(f"{path}: column {name!r} must be non-null strings, found {column.type}")
    return column.to_pylist()


def _float_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    column = table.column(name)
    if not pa.types.is_floating(column.type) or column.null_count:
        raise SubmissionRejected(f"{path}: column {name!r} must be non-null floats, found {column.type}")
    return np.asarray(column.to_numpy(), dtype=np.float64)


def _check_coverage(concept: np.ndarray, prompt: np.ndarray, image: np.ndarray, num_classes: int,
                    images_per_prompt: int, path: Path) -> None:
    """Every concept, every prompt index 0..P-1 of it, every image index 0..I-1 of each prompt, once."""
    for name, values, limit in (("concept_index", concept, num_classes), ("image_index", image, images_per_prompt)):
        outside = np.flatnonzero((values < 0) | (values >= limit))
        if outside.size:
            raise SubmissionRejected(f"{path}: row {outside[0]} has {name} {values[outside[0]]}, outside 0..{limit - 1}")
    negative = np.flatnonzero(prompt < 0)
    if negative.size:
        raise SubmissionRejected(f"{path}: row {negative[0]} has prompt_index {prompt[negative[0]]} < 0")
    missing = np.setdiff1d(np.arange(num_classes), concept)
    if missing.size:
        raise SubmissionRejected(f"{path}: {missing.size} of {num_classes} concepts have no image (first: "
                                 f"concept_index {missing[0]}); every concept must be generated")
    triple = np.stack([concept, prompt, image], axis=1)
    unique, counts = np.unique(triple, axis=0, return_counts=True)
    if (counts > 1).any():
        c, p, i = unique[np.argmax(counts > 1)]
        raise SubmissionRejected(f"{path}: image (concept_index {c}, prompt_index {p}, image_index {i}) appears "
                                 f"{counts.max()} times; each image must appear once")
    pairs, per_prompt = np.unique(unique[:, :2], axis=0, return_counts=True)
    short = np.flatnonzero(per_prompt != images_per_prompt)
    if short.size:
        c, p = pairs[short[0]]
        raise SubmissionRejected(f"{path}: prompt {p} of concept_index {c} has {per_prompt[short[0]]} images; "
                                 f"generation.images_per_prompt is {images_per_prompt}")
    prompts_per_concept = np.bincount(pairs[:, 0], minlength=num_classes)
    highest = np.full(num_classes, -1)
    np.maximum.at(highest, pairs[:, 0], pairs[:, 1])
    gap = np.flatnonzero(highest + 1 != prompts_per_concept)
    if gap.size:
        raise SubmissionRejected(f"{path}: concept_index {gap[0]} has prompt indices up to {highest[gap[0]]} but only "
                                 f"{prompts_per_concept[gap[0]]} prompts; a prompt is missing")


def _check_prompts_and_seeds(table: pa.Table, concept: np.ndarray, prompt: np.ndarray, image: np.ndarray,
                             class_names: list[str], results: dict[str, Any], path: Path) -> None:
    """Concept ids match the indices, one text per prompt, the prompts hash as claimed, seeds follow the rule."""
    from letitwag.harness.t2i.generation import image_seed
    from letitwag.harness.t2i.prompts import prompts_hash

    concept_ids = _strings(table, "concept_id", path)
    texts = _strings(table, "prompt", path)
    seeds = integer_column(table, "seed", path)
    names = np.asarray(class_names, dtype=object)
    wrong = np.flatnonzero(np.asarray(concept_ids, dtype=object) != names[concept])
    if wrong.size:
        raise SubmissionRejected(f"{path}: row {wrong[0]} has concept_id {short_repr(concept_ids[wrong[0]])} but "
                                 f"concept_index {concept[wrong[0]]} is {class_names[concept[wrong[0]]]!r}")
    prompts: dict[tuple[int, int], str] = {}
    base_seed = require(results, "config.seed", int, path.parent / "results.json")
    for row, (c, p, i) in enumerate(zip(concept.tolist(), prompt.tolist(), image.tolist())):
        text = prompts.setdefault((c, p), texts[row])
        if text != texts[row]:
            raise SubmissionRejected(f"{path}: prompt {p} of concept_index {c} has two different texts")
        if seeds[row] != image_seed(base_seed, class_names[c], text, i):
            raise SubmissionRejected(f"{path}: row {row} has seed {seeds[row]}, not the harness's seed for its "
                                     f"concept, prompt and image index (config.seed {base_seed})")
    per_concept: list[list[str]] = [[] for _ in class_names]
    for (c, _), text in sorted(prompts.items()):
        per_concept[c].append(text)
    claimed = (results.get("prompts") or {}).get("all_prompts_hash")
    if prompts_hash(per_concept) != claimed:
        raise SubmissionRejected(f"{path}: the prompts in the file do not hash to prompts.all_prompts_hash "
                                 f"{short_repr(claimed)} of results.json")


def check_t2i_predictions(data: bytes, path: Path, results: dict[str, Any], class_names: list[str]) -> T2IPredictions:
    """Every image once, valid judge top-k, finite CLIPScores >= 0, consistent retrieval ranks."""
    table = read_table(data, path, T2I_COLUMNS)
    num_classes = len(class_names)
    images_per_prompt = require(results, "generation.images_per_prompt", int, path.parent / "results.json")
    concept = integer_column(table, "concept_index", path)
    prompt = integer_column(table, "prompt_index", path)
    image = integer_column(table, "image_index", path)
    _check_coverage(concept, prompt, image, num_classes, images_per_prompt, path)
    _check_prompts_and_seeds(table, concept, prompt, image, class_names, results, path)

    k = min(5, num_classes)
    ids = list_column(table, "topk_ids", k, path, pa.types.is_integer)
    scores = list_column(table, "topk_scores", k, path, pa.types.is_floating)
    check_topk(ids, scores, np.arange(len(concept)), "row", num_classes, path)
    clip = _float_column(table, "clip_score", path)
    bad = np.flatnonzero(~np.isfinite(clip) | (clip < 0))
    if bad.size:
        raise SubmissionRejected(f"{path}: row {bad[0]} has clip_score {clip[bad[0]]}; CLIPScores are finite and >= 0")
    blacked = table.column("blacked_out")
    if not pa.types.is_boolean(blacked.type) or blacked.null_count:
        raise SubmissionRejected(f"{path}: column 'blacked_out' must be non-null booleans, found {blacked.type}")
    ranks = _retrieval_ranks(table, results, path)
    return T2IPredictions(concept_index=concept, topk_ids=ids.astype(np.int64, copy=False), clip_score=clip,
                          prompt_ids=np.stack([concept, prompt], axis=1),
                          blacked_out=np.asarray(blacked.to_numpy(zero_copy_only=False), dtype=bool),
                          retrieval_rank=ranks)


def _retrieval_ranks(table: pa.Table, results: dict[str, Any], path: Path) -> np.ndarray | None:
    column = table.column("retrieval_rank")
    if not pa.types.is_integer(column.type) and not pa.types.is_null(column.type):
        raise SubmissionRejected(f"{path}: column 'retrieval_rank' must be integers, found {column.type}")
    if column.null_count == len(table):
        if results.get("retrieval") is not None:
            raise SubmissionRejected(f"{path}: results.json names a retrieval judge but retrieval_rank is empty")
        return None
    if column.null_count:
        raise SubmissionRejected(f"{path}: retrieval_rank is null for {column.null_count} images and not others")
    if results.get("retrieval") is None:
        raise SubmissionRejected(f"{path}: retrieval_rank is filled but results.json has no retrieval judge")
    ranks = column.to_numpy().astype(np.int64)
    negative = np.flatnonzero(ranks < 0)
    if negative.size:
        raise SubmissionRejected(f"{path}: row {negative[0]} has retrieval_rank {ranks[negative[0]]} < 0")
    return ranks


def recompute_t2i(predictions: T2IPredictions, class_names: list[str], *, samples: int, seed: int,
                  frequency_counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    """The harness's T2I metrics for these predictions, with the claim's bootstrap settings."""
    from letitwag.harness.t2i import t2i_metrics

    return t2i_metrics(**predictions.metric_inputs(), class_names=class_names, bootstrap_samples=samples, seed=seed,
                       frequency_counts=frequency_counts)
