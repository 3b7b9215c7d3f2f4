"""Run one evaluation end to end: load the model, run the task, write the run directory."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from letitwag.errors import UserInputError
from letitwag.harness.allocator import reuse_freed_memory
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.results import RESULTS_FORMAT, environment, write_run
from letitwag.harness.tasks import get_task
from letitwag.models.base import check_precision

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_out_dir(options: EvaluationOptions) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in options.model)[-120:]
    return Path("results") / options.task / safe


def load_model(options: EvaluationOptions):
    """The encoder or generator ``options.model`` names, on its device (seeded: random weights reproduce)."""
    from letitwag.models import load_encoder, load_generator

    check_precision(options.precision)
    device = options.resolved_device()
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError(f"--device {device}: no CUDA device is available here; use --device cpu")
    torch.manual_seed(options.seed)  # random-weight models are then reproducible from the seed
    loader = load_encoder if get_task(options.task).loads == "encoder" else load_generator
    return loader(options.model, device=device, precision=options.precision, trust_remote_code=options.trust_remote_code)


def evaluate(options: EvaluationOptions, model=None) -> dict:
    """Evaluate ``options.model`` on ``options.dataset``; returns the results dict it wrote.

    ``model``: the already loaded model (``load_model``), so that a suite of datasets loads it once.
    """
    task = get_task(options.task)
    check_precision(options.precision)
    if options.batch_size < 1 or (options.workers is not None and options.workers < 0) or options.chunk_size < 1:
        raise UserInputError("--batch-size and --chunk-size must be >= 1 and --workers >= 0")
    started, clock = _now(), time.perf_counter()
    device = options.resolved_device()
    if model is None:
        model = load_model(options)
    # on a CPU, large activations are reused from the heap instead of mapped afresh per operation
    with reuse_freed_memory() if device.startswith("cpu") else contextlib.nullcontext():
        fields, predictions = task.run(options, model)
    out = Path(options.out) if options.out else default_out_dir(options)
    results = {
        "format": RESULTS_FORMAT,
        "task": task.name,
        "model": model.metadata(),
        **fields,
        "config": {
            "seed": options.seed, "batch_size": options.batch_size, "precision": options.precision,
            "device": device, "workers": options.workers, "decode": options.decode, "cpu_streams": options.cpu_streams,
            "limit": options.limit,
            "prompts": options.prompts, "bootstrap_samples": options.bootstrap_samples,
            "cache": not options.no_cache, **options.extra,
        },
        "environment": environment(),
        "timing": {"start": started, "end": _now(), "wall_seconds": round(time.perf_counter() - clock, 3)},
    }
    write_run(out, results, task.table(predictions))
    logger.info("wrote %s (top1 %.4f)", out, results["metrics"].get("top1", float("nan")))
    results["out_dir"] = str(out)
    return results
