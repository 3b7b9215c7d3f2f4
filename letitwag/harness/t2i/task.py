"""The ``t2i`` task: ``run(options, generator) -> (results fields, predictions columns)``.

Flow: dataset -> concepts and their prompts -> seeded, resumable generation into the run
directory -> judge (zero-shot classifier shared with the classification task, CLIPScore) ->
optional retrieval against the dataset's real images -> ``t2i_metrics``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from letitwag.harness.classification import _classifier as cached_classifier
from letitwag.harness.classification import dataset_fingerprint, predict_topk
from letitwag.harness.features import image_features, select_indices
from letitwag.harness.data import EvalDataset, open_dataset
from letitwag.harness.metrics import TOP_K
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.prompts import load_prompts, resolve_prompts
from letitwag.harness.t2i.generation import generate_all
from letitwag.harness.t2i.metrics import t2i_metrics
from letitwag.harness.t2i.prompts import concept_prompts, prompts_hash, read_prompt_file
from letitwag.harness.t2i.scoring import (clip_scores, feature_dimension, image_features_from_files,
                                          retrieval_ranks, text_features)
from letitwag.harness.t2i.settings import T2ISettings
from letitwag.io import text_sha256

logger = logging.getLogger(__name__)


def run_directory(options: EvaluationOptions) -> Path:
    """Where results and images go (the runner writes results.json to the same place)."""
    from letitwag.harness.runner import default_out_dir

    return Path(options.out) if options.out else default_out_dir(options)


def _load_judge(spec: str, options: EvaluationOptions):
    import torch

    from letitwag.models import load_encoder

    torch.manual_seed(options.seed)  # a random-weight judge is reproducible from the seed
    return load_encoder(spec, device=options.resolved_device(), precision=options.precision,
                        trust_remote_code=options.trust_remote_code)


def _retrieval(encoder, options, data: EvalDataset, generated_paths, concept_index) -> tuple[np.ndarray, dict]:
    """Rank the dataset's real images for every generated image with the retrieval judge."""
    gallery, cache_info = image_features(encoder, data, select_indices(data.num_rows, None, options.seed), options,
                                         options.resolved_cache_dir(), feature_dimension(encoder))
    keep = gallery["ok"] & (gallery["labels"] >= 0) & (gallery["labels"] < len(data.class_ids))
    generated = image_features_from_files(encoder, generated_paths, options.batch_size, "generated images (retrieval)")
    ranks = retrieval_ranks(generated, concept_index, gallery["features"][keep], gallery["labels"][keep])
    info = {
        "judge": encoder.metadata(), "gallery_images": int(keep.sum()),
        "skipped_gallery_images": int((~keep).sum()), "image_features_cache": cache_info,
        "gallery_fingerprint": dataset_fingerprint(data, gallery["indices"], gallery["labels"], gallery["hashes"]),
    }
    return ranks, info


def run(options: EvaluationOptions, generator) -> tuple[dict, dict]:
    """Generate, judge and score; images and completion records go to the run directory."""
    settings = T2ISettings.from_extra(options.extra)
    data = open_dataset(
        options.dataset, split=options.split, image_column=options.image_column, label_column=options.label_column,
        classnames_file=options.classnames, revision=options.dataset_revision,
    )
    overrides = read_prompt_file(settings.prompt_file, data.class_ids) if settings.prompt_file else {}
    templates = resolve_prompts(options.prompts, None, options.dataset)
    prompts = concept_prompts(data.class_ids, data.prompt_names, templates, overrides)
    # The judges load before generation: a typo or a missing download fails now, not after hours of generating.
    judge = _load_judge(settings.judge, options)
    retrieval_judge = _load_judge(settings.retrieval_judge, options) if settings.retrieval_judge else None
    judge_prompts = load_prompts(settings.judge_prompts)
    classifier, classifier_cache = cached_classifier(judge, data, judge_prompts, options, options.resolved_cache_dir())
    out_dir = run_directory(options)
    selected = select_indices(len(data.class_ids), options.limit, options.seed)
    images, generation_counts = generate_all(
        generator, selected, data.class_ids, prompts, out_dir, images_per_prompt=settings.images_per_prompt,
        seed=options.seed, batch_size=settings.generation_batch_size, options=settings.generation_options,
    )
    paths = [out_dir / image.path for image in images]
    concept_index = np.array([image.concept_index for image in images], dtype=np.int64)

    features = image_features_from_files(judge, paths, options.batch_size)
    topk_ids, topk_scores = predict_topk(features, classifier, judge.logit_scale, min(TOP_K, len(data.class_ids)))
    unique_prompts = sorted({image.prompt for image in images})
    prompt_row = {prompt: row for row, prompt in enumerate(unique_prompts)}
    prompt_features = text_features(judge, unique_prompts, options.batch_size)
    clip = clip_scores(features, prompt_features[[prompt_row[image.prompt] for image in images]])

    ranks, retrieval_info = (None, None)
    if retrieval_judge is not None:
        ranks, retrieval_info = _retrieval(retrieval_judge, options, data, paths, concept_index)
    blacked_out = np.array([image.blacked_out for image in images], dtype=bool)
    if blacked_out.any():
        logger.warning("%d of %d generated images are blacked out (all zero: a safety filter or NaN output); "
                       "they are left out of CLIPScore as in HEIM", int(blacked_out.sum()), len(images))
    prompt_index = np.array([image.prompt_index for image in images], dtype=np.int64)
    metrics = t2i_metrics(concept_index, topk_ids, clip, np.stack([concept_index, prompt_index], axis=1),
                          data.class_ids, blacked_out=blacked_out, retrieval_rank=ranks,
                          bootstrap_samples=options.bootstrap_samples, seed=options.seed)
    fields = {
        "dataset": {
            "id": options.dataset, "split": data.split, "revision": data.revision,
            "fingerprint": retrieval_info["gallery_fingerprint"] if retrieval_info else None,
            "num_rows": data.num_rows, "num_classes": len(data.class_ids), "class_names": data.class_ids,
            "prompt_names": data.prompt_names, "class_list_hash": text_sha256("\n".join(data.class_ids)),
            "num_concepts_selected": int(len(selected)), "image_column": data.image_column,
            "label_column": data.label_column,
        },
        "prompts": {"set": templates.name, "hash": templates.hash, "num_templates": len(templates.templates),
                    "prompt_file": str(settings.prompt_file) if settings.prompt_file else None,
                    "concepts_from_prompt_file": sorted(overrides), "all_prompts_hash": prompts_hash(prompts)},
        "judge": {**judge.metadata(), "prompts": judge_prompts.name, "prompts_hash": judge_prompts.hash},
        "retrieval": retrieval_info,
        "generation": {"images_per_prompt": settings.images_per_prompt, "options": settings.generation_options,
                       "seed_rule": "sha256([seed, concept_id, prompt, image_index]) first 4 bytes & 0x7fffffff",
                       **generation_counts},
        "metrics": metrics,
        "cache": {"judge_classifier": classifier_cache},
    }
    predictions = {
        "concept_index": concept_index, "concept_id": [image.concept_id for image in images],
        "prompt_index": prompt_index, "prompt": [image.prompt for image in images],
        "image_index": [image.image_index for image in images], "seed": [image.seed for image in images],
        "image_path": [image.path for image in images], "image_sha256": [image.sha256 for image in images],
        "blacked_out": blacked_out, "topk_ids": topk_ids, "topk_scores": topk_scores, "clip_score": clip,
        "retrieval_rank": ranks,
    }
    return fields, predictions
