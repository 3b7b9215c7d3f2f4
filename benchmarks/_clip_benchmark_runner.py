"""Run CLIP_benchmark's own zero-shot evaluation on a folder of images (executed in ITS venv).

Why a separate script: clip-benchmark 1.6.2 needs numpy < 2.4, so it runs in its own virtual
environment (see ``clip_benchmark_env.py``) and talks to letitwag through JSON files only.
It imports nothing from letitwag. Input (argv[1]) is a JSON job; output (argv[2]) a JSON report
with CLIP_benchmark's metrics, its per-sample top-1 predictions and the image-loop time.
"""

import json
import sys
import time
from pathlib import Path


def main(job_path: str, out_path: str) -> None:
    import open_clip
    import torch
    from clip_benchmark.metrics import zeroshot_classification as zsc
    from torchvision.datasets import ImageFolder

    job = json.loads(Path(job_path).read_text())
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    if job.get("config_dir"):
        open_clip.add_model_config(job["config_dir"])
    # The same loading call CLIP_benchmark's open_clip loader makes.
    model, _, transform = open_clip.create_model_and_transforms(
        job["arch"], pretrained=job["checkpoint"], device=job.get("device", "cpu"))
    model.eval()
    tokenizer = open_clip.get_tokenizer(job["arch"])
    dataset = ImageFolder(job["image_root"], transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=job["batch_size"], shuffle=False, num_workers=job.get("workers", 0))

    # Observe (not change) CLIP_benchmark's image loop: keep its logits and time it.
    observed = {}
    run_classification = zsc.run_classification

    def timed_run_classification(*args, **kwargs):
        started = time.perf_counter()
        logits, target = run_classification(*args, **kwargs)
        observed["seconds"] = time.perf_counter() - started
        observed["top1"] = logits.argmax(dim=1).tolist()
        return logits, target

    zsc.run_classification = timed_run_classification
    started = time.perf_counter()
    metrics = zsc.evaluate(model, loader, tokenizer, job["classnames"], job["templates"],
                           job.get("device", "cpu"), amp=bool(job.get("amp", False)))
    total = time.perf_counter() - started
    report = {
        "metrics": {k: (None if v != v else float(v)) for k, v in metrics.items()},
        "samples": [Path(path).stem for path, _ in dataset.samples],
        "labels": [int(label) for _, label in dataset.samples],
        "top1": observed["top1"],
        "image_loop_seconds": observed["seconds"],
        "total_seconds": total,
        "versions": {"open_clip": open_clip.__version__, "torch": torch.__version__},
    }
    Path(out_path).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
