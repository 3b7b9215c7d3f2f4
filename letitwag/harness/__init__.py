"""The evaluation harness: score zero-shot classifiers, image-text retrieval and text-to-image models.

Why it exists: the paper's finding (accuracy grows only log-linearly with a concept's
pretraining frequency) has to be measured the same way for every model, with results a
leaderboard can verify and the analysis can join with frequencies.

Python API (the CLI ``python -m letitwag.evaluate`` / ``letitwag evaluate`` wraps it)::

    from letitwag.harness import EvaluationOptions, evaluate
    results = evaluate(EvaluationOptions(model="open_clip:ViT-B-32/laion2b_s34b_b79k", out="runs/b32"))
    results = evaluate(EvaluationOptions(model="open_clip:ViT-B-32/laion2b_s34b_b79k", task="retrieval",
                                         dataset="clip-benchmark/wds_mscoco_captions", out="runs/b32-coco"))
    results = evaluate(EvaluationOptions(model="diffusers:DIR", task="t2i", prompts="simple",
                                         extra={"judge": "open_clip:ViT-L-14/openai"}, out="runs/sd"))
    summary = run_suite(EvaluationOptions(model="open_clip:ViT-B-32/laion400m_e32", out="runs/b32"),
                        "/data/clip_benchmark")   # Let it Wag! + every dataset of the paper found there

Modules:

* ``options`` — ``EvaluationOptions``: model spec, dataset, split, prompts, batch size, workers,
  device, precision, seed, ``limit``, cache dir; task-specific settings in ``extra``.
* ``runner`` — ``evaluate(options)``: seeds, loads the model (``letitwag.models``), runs the
  task, writes ``results.json`` + ``predictions.parquet`` atomically (``results``).
* ``suite`` — ``run_suite(options, data_root)``: the paper's datasets (``letitwag.downstream``) found
  under a folder or on the Hub, one run folder each and ``suite.json``; reruns reuse finished datasets.
* ``tasks`` — the task registry (``classification``, ``retrieval``, ``t2i``); a task is a module with
  ``run(options, model) -> (fields, predictions)``.
* ``data`` / ``images`` — Hub-layout, ``save_to_disk`` or image-folder datasets, image/label columns
  detected from the ``Image``/``ClassLabel`` features; decoding in DataLoader workers, corrupt images counted.
* ``wds`` — CLIP_benchmark's webdataset layout (local or ``clip-benchmark/wds_*`` on the Hub), read in place.
* ``captions`` — image-caption datasets for retrieval (webdataset, a caption list per image, or a row per caption).
* ``prompts`` — bundled prompt sets (``ensemble`` = the paper's 80 templates), a file, or a dataset's
  shipped templates, and their hash.
* ``features`` — image features and caption embeddings in resumable cached chunks, ``--limit``, ``--compile``.
* ``classification`` — zero-shot classifier (normalise-average-normalise), top-k; each class mapped to the
  paper's concept id for the frequency join (``letitwag.concept_map``).
* ``retrieval`` / ``retrieval_metrics`` — ranks of the positives in both directions; recall@k, CIs and
  per-concept recall from the per-caption ranks alone; ``caption_concepts`` tags captions with the
  frequency engine's matcher.
* ``cache`` — classifier cache and atomic feature chunks: reruns and killed runs resume.
* ``batching`` — halves the batch size on out-of-memory.
* ``streams`` — on a CPU, several image batches encoded at once, one per core (``--cpu-streams``).
* ``allocator`` — on glibc, large activations reused from the heap during a CPU run.
* ``metrics`` — ``classification_metrics(labels, topk_ids, class_names, ...)``: top-1/top-5, mean
  per-class recall, bootstrap CIs, per-class accuracy, accuracy by pretraining-frequency bin.
  It works from predictions alone, so the leaderboard recomputes every claimed number.
* ``t2i`` — text-to-image: seeded, resumable generation; judge accuracy, CLIPScore, retrieval CMC;
  ``t2i_metrics`` recomputes them from predictions.

File formats: ``docs/FORMATS.md``.
"""

from letitwag.harness.options import DEFAULT_DATASET, EvaluationOptions
from letitwag.harness.runner import evaluate
from letitwag.harness.suite import run_suite

__all__ = ["DEFAULT_DATASET", "EvaluationOptions", "evaluate", "run_suite"]
