"""Run CLIP_benchmark's own zero-shot evaluation on a dataset (a separate process, imports nothing from letitwag).

Why a separate script: clip-benchmark 1.6.2 is measured as it runs on its own, in its own
process: in its own virtual environment here (``clip_benchmark_env.py``), or with the
interpreter it is given (the GPU machine, ``gpu_bench.py``). It talks to letitwag through JSON
files only. Input (argv[1]) is a JSON job; output (argv[2]) a JSON report.

numpy >= 2.4: CLIP_benchmark 1.6.2's ``accuracy`` turns a one-element array into a float
(``float(x.cpu().numpy())``), which numpy 2.4 refuses ("only 0-dimensional arrays can be
converted to Python scalars"). With such a numpy, ``_numpy_compat`` replaces that one function
by the same computation reading the element with ``.item()``; it runs after the image loop, on
the logits, so nothing measured changes. The report says whether it was applied.

Job kinds (``job["kind"]``):

* ``imagefolder`` (default): zero-shot classification of a class-per-folder tree (torchvision's
  ``ImageFolder``) with the job's class names and templates; per-sample top-1 and the image-loop time.
* ``wds_classification``: zero-shot classification of a folder in CLIP_benchmark's webdataset
  layout, built and loaded exactly as ``clip_benchmark eval --dataset wds/NAME`` does (its class
  names and templates); per-sample top-1 in the order CLIP_benchmark reads the samples.
* ``wds_retrieval``: zero-shot retrieval on a webdataset folder, as ``clip_benchmark eval --task
  zeroshot_retrieval --dataset wds/NAME --recall_k 1 5 10``; the metrics and the time of
  ``zeroshot_retrieval.evaluate`` (image and text encoding, scoring).
"""

import json
import sys
import time
from pathlib import Path


def _model(job: dict):
    """The same loading call CLIP_benchmark's open_clip loader makes."""
    import open_clip

    if job.get("config_dir"):
        open_clip.add_model_config(job["config_dir"])
    model, _, transform = open_clip.create_model_and_transforms(
        job["arch"], pretrained=job["checkpoint"], device=job.get("device", "cpu"))
    model.eval()
    return model, transform, open_clip.get_tokenizer(job["arch"])


def _wds_loader(job: dict, transform, task: str):
    """CLIP_benchmark's webdataset dataset and DataLoader, exactly as its ``cli.py`` builds them."""
    import torch
    from clip_benchmark.datasets.builder import build_dataset

    dataset = build_dataset(dataset_name="wds/" + Path(job["wds_root"]).name, root=job["wds_root"],
                            transform=transform, split=job.get("split", "test"), task=task)
    loader = torch.utils.data.DataLoader(dataset.batched(job["batch_size"]), batch_size=None, shuffle=False,
                                         num_workers=job.get("workers", 0))
    return dataset, loader


def _versions() -> dict:
    import numpy
    import open_clip
    import torch

    return {"open_clip": open_clip.__version__, "torch": torch.__version__, "numpy": numpy.__version__}


def _numpy_compat(zsc) -> bool:
    """Make CLIP_benchmark's ``accuracy`` work with numpy >= 2.4 (see the module docstring); True if patched."""
    import numpy

    if tuple(int(part) for part in numpy.__version__.split(".")[:2]) < (2, 4):
        return False

    def accuracy(output, target, topk=(1,)):
        pred = output.topk(max(topk), 1, True, True)[1].t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        n = len(target)
        return [float(correct[:k].reshape(-1).float().sum(0, keepdim=True).cpu().item()) / n for k in topk]

    zsc.accuracy = accuracy
    return True


def retrieval(job: dict) -> dict:
    """``zeroshot_retrieval.evaluate`` with recall@1/5/10, timed."""
    from clip_benchmark.metrics import zeroshot_retrieval

    model, transform, tokenizer = _model(job)
    _, loader = _wds_loader(job, transform, "zeroshot_retrieval")
    started = time.perf_counter()
    metrics = zeroshot_retrieval.evaluate(model, loader, tokenizer, recall_k_list=[1, 5, 10],
                                          device=job.get("device", "cpu"), amp=bool(job.get("amp", False)))
    return {"metrics": {k: float(v) for k, v in metrics.items()}, "evaluate_seconds": time.perf_counter() - started,
            "versions": _versions()}


def main(job_path: str, out_path: str) -> None:
    import torch
    from clip_benchmark.metrics import zeroshot_classification as zsc

    job = json.loads(Path(job_path).read_text())
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    patched = _numpy_compat(zsc)
    kind = job.get("kind", "imagefolder")
    if kind == "wds_retrieval":
        Path(out_path).write_text(json.dumps(retrieval(job)))
        return
    model, transform, tokenizer = _model(job)
    if kind == "wds_classification":
        dataset, loader = _wds_loader(job, transform, "zeroshot_classification")
        classnames, templates = dataset.classes, dataset.templates
    else:
        from torchvision.datasets import ImageFolder

        dataset = ImageFolder(job["image_root"], transform=transform)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=job["batch_size"], shuffle=False, num_workers=job.get("workers", 0))
        classnames, templates = job["classnames"], job["templates"]

    # Observe (not change) CLIP_benchmark's image loop: keep its logits and time it.
    observed = {}
    run_classification = zsc.run_classification

    def timed_run_classification(*args, **kwargs):
        started, wall = time.perf_counter(), time.time()
        logits, target = run_classification(*args, **kwargs)
        observed["seconds"] = time.perf_counter() - started
        observed["window"] = [wall, time.time()]  # for sampling the GPU's utilisation from outside
        observed["top1"] = logits.argmax(dim=1).tolist()
        observed["labels"] = target.tolist()
        return logits, target

    zsc.run_classification = timed_run_classification
    started = time.perf_counter()
    metrics = zsc.evaluate(model, loader, tokenizer, classnames, templates,
                           job.get("device", "cpu"), amp=bool(job.get("amp", False)))
    total = time.perf_counter() - started
    report = {
        "metrics": {k: (None if v != v else float(v)) for k, v in metrics.items()},
        "top1": observed["top1"],
        "targets": observed["labels"],
        "image_loop_seconds": observed["seconds"],
        "image_loop_window": observed["window"],
        "total_seconds": total,
        "classnames": list(classnames),
        "templates": list(templates),
        "versions": _versions(),
        "numpy_compat_patch": patched,
    }
    if kind == "imagefolder":
        report["samples"] = [Path(path).stem for path, _ in dataset.samples]
        report["labels"] = [int(label) for _, label in dataset.samples]
    Path(out_path).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
