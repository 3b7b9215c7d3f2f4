"""``evaluate --suite paper``: one model on Let it Wag! and every evaluation dataset of the paper.

Why: the paper's central figure for a new model needs its per-concept results on 19 classification
sets, COCO and Flickr retrieval, and Let it Wag!. The suite finds each dataset under a data folder
(by the folder names of ``letitwag.downstream``: CLIP_benchmark's ``wds_imagenet1k``,
``wds_vtab-cifar10``, ``wds_mscoco_captions``, ..., the paper's own name such as ``cub``, or a Hub
repository's name), else loads it from the Hub when online, and evaluates the model (loaded once) on
each into ``OUT/<dataset>/``. A dataset it can neither find nor download is listed in ``suite.json``
with the command that gets it; a dataset that fails is listed with its one-line error. Nothing is
skipped silently.

Resumable: ``suite.json`` is rewritten atomically after every dataset, and a rerun reuses a dataset
whose ``results.json`` is complete and was written for the same model and the same settings
(``RUN_KEYS``); a dataset killed half way resumes from the harness's own feature caches.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from letitwag.downstream import DownstreamDataset, downstream_datasets
from letitwag.errors import UserInputError
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.results import PREDICTIONS_FILE, RESULTS_FILE
from letitwag.io import atomic_write_json

logger = logging.getLogger(__name__)

SUITE_FORMAT = "letitwag.suite/1"
SUITE_FILE = "suite.json"
SUITES = ("paper",)
PAPER_CAPTIONS_PER_IMAGE = 5  # the paper kept the first 5 captions of each COCO / Flickr image
# Settings a result depends on: a stored run is reused only when they are all the same.
RUN_KEYS = ("seed", "precision", "limit", "prompts", "bootstrap_samples", "captions_per_image", "min_concept_images")
HEADLINE = {"classification": ("top1", "top5", "mean_per_class_recall"),
            "retrieval": ("text_to_image_recall@1", "text_to_image_recall@5", "text_to_image_recall@10",
                          "image_to_text_recall@1", "image_to_text_recall@5", "image_to_text_recall@10")}


def hub_allowed(hub: bool | None) -> bool:
    """``hub`` as given, else online unless ``HF_HUB_OFFLINE`` says otherwise."""
    if hub is not None:
        return hub
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("1", "true", "yes", "on")


def locate(dataset: DownstreamDataset, data_root: Path | None, hub: bool) -> str | None:
    """The folder under ``data_root`` holding ``dataset`` (first of its folder names), else its Hub id if
    the Hub may be used, else None."""
    if data_root is not None:
        for name in dataset.folder_names():
            if (data_root / name).is_dir():
                return str(data_root / name)
    return dataset.hub if hub else None


def dataset_options(base: EvaluationOptions, dataset: DownstreamDataset, source: str, out: Path) -> EvaluationOptions:
    """``base`` for one dataset: its task, source and run folder; the paper's 5 captions per image for retrieval.

    The dataset's own bundled concept list is always used (a suite-wide ``--concepts`` would be wrong for
    all but one dataset).
    """
    extra = {key: value for key, value in base.extra.items() if key in ("compile", "min_concept_images")}
    extra["concepts"] = None
    if dataset.task == "retrieval":
        extra["captions_per_image"] = base.extra.get("captions_per_image") or PAPER_CAPTIONS_PER_IMAGE
    return dataclasses.replace(base, task=dataset.task, dataset=source, split=None, out=out / dataset.name,
                               image_column=None, label_column=None, classnames=None, extra=extra)


def _run_settings(options: EvaluationOptions) -> dict:
    values = {"seed": options.seed, "precision": options.precision, "limit": options.limit,
              "prompts": options.prompts, "bootstrap_samples": options.bootstrap_samples, **options.extra}
    return {key: values.get(key) for key in RUN_KEYS}


def stored_run(options: EvaluationOptions) -> dict | None:
    """The results of ``options.out`` if complete and written for the same model, dataset, task and settings."""
    folder = Path(options.out)
    if not (folder / RESULTS_FILE).is_file() or not (folder / PREDICTIONS_FILE).is_file():
        return None
    try:
        results = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    stored = {"model": (results.get("model") or {}).get("spec"), "task": results.get("task"),
              "dataset": (results.get("dataset") or {}).get("id"),
              "settings": {key: (results.get("config") or {}).get(key) for key in RUN_KEYS}}
    wanted = {"model": options.model, "task": options.task, "dataset": options.dataset,
              "settings": _run_settings(options)}
    if stored != wanted:
        logger.info("%s: stored results are for other settings; evaluating again", folder)
        return None
    return results


def _headline(results: dict, task: str) -> dict:
    metrics = results.get("metrics") or {}
    return {key: metrics.get(key) for key in HEADLINE[task]}


def _entry(dataset: DownstreamDataset, out: Path, data_root: Path | None, **fields) -> dict:
    entry = {"name": dataset.name, "task": dataset.task, "description": dataset.description, "status": None,
             "source": None, "results": None, "metrics": None, "how_to_get": None, "error": None}
    entry.update(fields)
    if entry["status"] in ("evaluated", "reused"):
        entry["results"] = f"{dataset.name}/{RESULTS_FILE}"
    else:
        entry["how_to_get"] = dataset.how_to_get(data_root or out / "data")
    return entry


def _write_summary(out: Path, header: dict, entries: list[dict]) -> dict:
    statuses = [entry["status"] for entry in entries]
    summary = {**header, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "summary": {status: statuses.count(status) for status in ("evaluated", "reused", "missing", "failed")},
               "datasets": entries}
    atomic_write_json(out / SUITE_FILE, summary)
    return summary


def run_suite(options: EvaluationOptions, data_root: str | Path | None, *, suite: str = "paper",
              hub: bool | None = None) -> dict:
    """Evaluate ``options.model`` on every dataset of ``suite`` into ``options.out``; returns ``suite.json``.

    ``options`` holds the model and the run settings (batch size, device, precision, prompts, seed, ...);
    its task, dataset and columns are set per dataset. ``hub``: whether datasets missing under
    ``data_root`` are loaded from the Hub (None: unless ``HF_HUB_OFFLINE=1``).
    """
    from letitwag.harness.runner import evaluate, load_model

    if suite not in SUITES:
        raise UserInputError(f"unknown --suite {suite!r}; choose one of {', '.join(SUITES)}")
    if options.out is None:
        raise UserInputError("--suite needs --out DIR (one folder per dataset goes in it)")
    root = Path(data_root).expanduser() if data_root is not None else None
    if root is not None and not root.is_dir():
        raise UserInputError(f"--data-root {root}: no such folder")
    out = Path(options.out)
    use_hub = hub_allowed(hub)
    header = {"format": SUITE_FORMAT, "suite": suite, "model": options.model,
              "data_root": str(root) if root is not None else None, "hub": use_hub,
              "settings": {"seed": options.seed, "precision": options.precision, "limit": options.limit,
                           "prompts": options.prompts, "bootstrap_samples": options.bootstrap_samples,
                           "retrieval_captions_per_image": options.extra.get("captions_per_image")
                           or PAPER_CAPTIONS_PER_IMAGE}}
    entries: list[dict] = []
    model = None
    for dataset in downstream_datasets():
        source = locate(dataset, root, use_hub)
        if source is None:
            logger.warning("%s: not found under %s; %s", dataset.name, root, dataset.how_to_get(root or out / "data"))
            entries.append(_entry(dataset, out, root, status="missing"))
            _write_summary(out, header, entries)
            continue
        run = dataset_options(options, dataset, source, out)
        results = stored_run(run)
        status = "reused"
        if results is None:
            try:
                model = model if model is not None else load_model(dataclasses.replace(options, task="classification"))
                results = evaluate(run, model=model)
                status = "evaluated"
            except UserInputError as error:
                logger.error("%s: %s", dataset.name, error)
                entries.append(_entry(dataset, out, root, status="failed", source=source, error=str(error)))
                _write_summary(out, header, entries)
                continue
        entries.append(_entry(dataset, out, root, status=status, source=source,
                              metrics=_headline(results, dataset.task)))
        _write_summary(out, header, entries)
    return _write_summary(out, header, entries)
