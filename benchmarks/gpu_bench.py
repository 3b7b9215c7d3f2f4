"""Evaluation at a GPU's speed: letitwag's device data path next to CLIP_benchmark 1.6.2, same model and bytes.

Claims checked (issue 17), on one H100 or H200 (the device is printed with every figure):
- ViT-B-32, bf16, ``--decode gpu``: the whole 130,500-image loop of a Let it Wag!-sized dataset
  in < 30 s (>= 4,350 images/s end to end from JPEG bytes), >= 3x CLIP_benchmark's images/s on
  the same GPU and data (its default DataLoader settings: batch 64, 4 workers, amp; and with
  ``--num_workers`` = the machine's CPUs);
- agreement: top-1 identical to letitwag's fp32 CPU-decode path on >= 99.5% of a 2,000-image
  subset for the GPU fp32 run; the bf16 run's agreement reported;
- GPU utilisation over the image loop (NVML, or ``nvidia-smi`` sampled every 0.1 s), and where
  the rest of the time goes: letitwag's profile (waiting for decoded batches vs the model) and
  each stage alone (reading bytes, decoding + resizing on the device, the model's forward).

The dataset (``_synthetic_images``): 130,500 photograph-like images, 290 classes (Let it Wag!'s
class names, its 80 prompt templates), ~500x375 at web JPEG qualities (~85 KB), 1% progressive
JPEGs and 0.5% PNGs (which letitwag decodes on the CPU path), in CLIP_benchmark's webdataset
layout, written in parallel on every core, read by both tools in place. ViT-B-32 (and with
``--also-large`` ViT-L-14) with RANDOM weights saved once: a plumbing model, so its accuracy
means nothing, but its arithmetic is the real one. CLIP_benchmark runs on a subset of whole
shards (``--peer-images``) to fit the time budget; its images/s is its image loop's
(``run_classification``), letitwag's is ``profile.image_features`` (reading, decoding, model,
feature cache), both including their DataLoader start.

Steps run in order of importance while ``--budget-s`` lasts; each writes ``gpu_bench.json``
(atomically) so a run cut short keeps what it measured.

    python benchmarks/gpu_bench.py --out bench-out/gpu                  # the device run (see docs/performance.md)
    python benchmarks/gpu_bench.py --quick --device cpu --out /tmp/gpu  # a smoke run on a CPU (tiny sizes)
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import clip_benchmark_env  # noqa: E402
from bench_evaluate import precision_agreement, random_checkpoint  # noqa: E402
from peer_clip_benchmark import wds_job  # noqa: E402

LET_IT_WAG_IMAGES, LET_IT_WAG_CLASSES = 130_500, 290
TARGET_SECONDS, TARGET_RATIO, TARGET_AGREEMENT = 30.0, 3.0, 0.995
SHARES = {"png": 0.005, "progressive": 0.01}  # the rest: baseline JPEGs


# --- the dataset -----------------------------------------------------------------------------

_MAKER = None


def _init_maker(seed: int) -> None:
    global _MAKER
    from _synthetic_images import PhotoMaker

    _MAKER = PhotoMaker(seed)


def _write_shard(task: tuple) -> int:
    """One tar of samples ``start..stop-1``: image (jpg or png) + cls, seeded by the shard number."""
    import io

    from _synthetic_images import web_size

    folder, shard, start, stop, classes, seed = task
    rng = np.random.default_rng([seed, shard])
    path = Path(folder) / f"{shard}.tar"
    tmp = path.with_suffix(".tar.tmp")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as archive:
        for index in range(start, stop):
            draw = rng.random()
            fmt = "png" if draw < SHARES["png"] else "progressive" if draw < SHARES["png"] + SHARES["progressive"] \
                else "jpeg"
            label = index % classes
            for extension, data in (("png" if fmt == "png" else "jpg", _MAKER.encoded(rng, label, web_size(rng), fmt)),
                                    ("cls", str(label).encode())):
                member = tarfile.TarInfo(f"s{index:07d}.{extension}")
                member.size, member.mtime = len(data), 0
                archive.addfile(member, io.BytesIO(data))
    os.replace(tmp, path)
    return stop - start


def write_dataset(root: Path, images: int, classes: int, shard_size: int, templates: list[str], jobs: int,
                  seed: int = 0) -> dict:
    """The webdataset folder (reused when its manifest matches); returns the manifest."""
    from letitwag.concepts import load_concepts

    wanted = {"images": images, "classes": classes, "shard_size": shard_size, "seed": seed, "shares": SHARES,
              "templates": len(templates)}
    manifest = root / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("params") == wanted:
        return json.loads(manifest.read_text())
    shutil.rmtree(root, ignore_errors=True)
    (root / "test").mkdir(parents=True)
    names = [concept.name for concept in load_concepts("let-it-wag")][:classes]
    names += [f"class {i}" for i in range(len(names), classes)]
    (root / "classnames.txt").write_text("\n".join(names) + "\n")
    (root / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
    bounds = list(range(0, images, shard_size)) + [images]
    tasks = [(str(root / "test"), shard, bounds[shard], bounds[shard + 1], classes, seed)
             for shard in range(len(bounds) - 1)]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(jobs, initializer=_init_maker, initargs=(seed,)) as pool:
        written = sum(pool.imap_unordered(_write_shard, tasks))
    (root / "test" / "nshards.txt").write_text(f"{len(tasks)}\n")
    sizes = [m.size for path in sorted((root / "test").glob("*.tar"))[:2] for m in tarfile.open(path) if
             m.name.endswith(".jpg")]
    info = {"params": wanted, "root": str(root), "shards": len(tasks), "images": written,
            "write_seconds": time.perf_counter() - started, "jobs": jobs,
            "mean_jpeg_kb": float(np.mean(sizes) / 1000) if sizes else None}
    manifest.write_text(json.dumps(info, indent=2))
    return info


def shard_subset(root: Path, shards: int) -> Path:
    """A webdataset folder holding the first ``shards`` shards of ``root`` (links, no copies)."""
    subset = root.parent / f"{root.name}-first{shards}"
    shutil.rmtree(subset, ignore_errors=True)
    (subset / "test").mkdir(parents=True)
    for name in ("classnames.txt", "zeroshot_classification_templates.txt"):
        shutil.copy(root / name, subset / name)
    for shard in range(shards):
        (subset / "test" / f"{shard}.tar").symlink_to((root / "test" / f"{shard}.tar").resolve())
    (subset / "test" / "nshards.txt").write_text(f"{shards}\n")
    return subset


# --- GPU utilisation -------------------------------------------------------------------------

class Utilisation:
    """Samples the GPU's utilisation (% of time a kernel ran), memory-bus and JPEG-engine
    utilisation every 0.1 s in a thread: NVML (nvidia-ml-py) when importable, else ``nvidia-smi``."""

    def __init__(self, period: float = 0.1) -> None:
        self.period = period
        self.samples: list[tuple[float, float, float, float]] = []  # (time, gpu %, memory %, jpeg %)
        self.stop = threading.Event()
        self.source = None
        self.thread = None

    def _reader(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(int(os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
                                                           or 0))

            def read():
                rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
                try:
                    jpeg = float(pynvml.nvmlDeviceGetJpgUtilization(handle)[0])
                except (AttributeError, pynvml.NVMLError):
                    jpeg = float("nan")
                return float(rates.gpu), float(rates.memory), jpeg

            read()
            self.source = "nvml"
            return read
        except Exception:  # noqa: BLE001 - no NVML: try nvidia-smi
            pass
        if shutil.which("nvidia-smi") is None:
            return None

        def read_smi():
            line = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,utilization.memory",
                                   "--format=csv,noheader,nounits", "-i", "0"], capture_output=True, text=True,
                                  timeout=5).stdout.strip().splitlines()[0]
            gpu, memory = (float(value) for value in line.split(","))
            return gpu, memory, float("nan")

        self.source = "nvidia-smi"
        return read_smi

    def __enter__(self) -> "Utilisation":
        read = self._reader()
        if read is not None:
            def loop():
                while not self.stop.is_set():
                    try:
                        self.samples.append((time.time(), *read()))
                    except Exception:  # noqa: BLE001 - a missed sample is not worth the run
                        pass
                    self.stop.wait(self.period)

            self.thread = threading.Thread(target=loop, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def summary(self, start: float, end: float) -> dict | None:
        """Mean / median / 10th percentile of the samples taken in ``[start, end]``."""
        rows = np.array([s[1:] for s in self.samples if start <= s[0] <= end])
        if len(rows) == 0:
            return None
        described = {"source": self.source, "samples": len(rows), "gpu_util_mean": float(rows[:, 0].mean()),
                     "gpu_util_median": float(np.median(rows[:, 0])), "gpu_util_p10": float(np.percentile(rows[:, 0], 10)),
                     "memory_util_mean": float(rows[:, 1].mean())}
        if not np.isnan(rows[:, 2]).all():
            described["jpeg_engine_util_mean"] = float(np.nanmean(rows[:, 2]))
        return described


# --- letitwag and CLIP_benchmark runs -----------------------------------------------------------

class LoopClock:
    """Wall-clock window of the harness's image loop (``image_features``), to cut the utilisation samples."""

    def __init__(self) -> None:
        self.window = None

    def __enter__(self):
        import letitwag.harness.classification as classification

        self.module, self.original = classification, classification.image_features

        def timed(*args, **kwargs):
            started = time.time()
            result = self.original(*args, **kwargs)
            self.window = (started, time.time())
            return result

        classification.image_features = timed
        return self

    def __exit__(self, *exc) -> None:
        self.module.image_features = self.original


def run_letitwag(name: str, spec: str, root: Path, args, work: Path, precision: str, decode: str,
                 limit: int | None = None, gpu: Utilisation | None = None) -> dict:
    """One ``letitwag evaluate`` (fresh caches); images/s of its image loop, its profile and decode record."""
    from letitwag.harness.options import EvaluationOptions
    from letitwag.harness.runner import evaluate

    cache = work / "cache" / name
    shutil.rmtree(cache, ignore_errors=True)
    options = EvaluationOptions(model=spec, dataset=str(root), out=work / "runs" / name, cache_dir=cache,
                                batch_size=args.batch_size, device=args.device, precision=precision, decode=decode,
                                limit=limit, bootstrap_samples=0)
    with LoopClock() as clock:
        results = evaluate(options)
    seconds = results["profile"]["seconds"]
    images = results["profile"]["images_encoded"]
    return {"name": name, "precision": precision, "decode": results["decode"], "images": images,
            "batch_size": args.batch_size, "image_loop_s": seconds["image_features"],
            "images_per_s": images / seconds["image_features"], "profile_s": seconds,
            "gpu": gpu.summary(*clock.window) if gpu is not None and clock.window else None,
            "out_dir": results["out_dir"], "top1": results["metrics"]["top1"]}


def run_peer(name: str, arch: str, checkpoint: Path, root: Path, args, workers: int,
             gpu: Utilisation | None = None) -> dict:
    """CLIP_benchmark's zero-shot classification of the webdataset folder, as ``clip_benchmark eval`` runs it."""
    job = wds_job("wds_classification", arch, str(checkpoint), None, str(root), args.peer_batch_size, workers)
    job.update(device=args.device, amp=str(args.device).startswith("cuda"))  # its default amp, on a GPU
    report = clip_benchmark_env.run(job, python=args.peer_python, timeout=args.budget_s)
    images = len(report["top1"])
    return {"name": name, "workers": workers, "batch_size": args.peer_batch_size, "amp": job["amp"],
            "images": images, "image_loop_s": report["image_loop_seconds"],
            "images_per_s": images / report["image_loop_seconds"], "versions": report["versions"],
            "numpy_compat_patch": report.get("numpy_compat_patch"),
            "gpu": gpu.summary(*report["image_loop_window"]) if gpu is not None else None}


# --- each stage alone ------------------------------------------------------------------------

def _synchronize(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def forward_only(spec: str, device: str, precision: str, batch_size: int, batches: int, compile_tower: bool = False) -> dict:
    """The image tower alone on one resident batch: images/s (and the first batch's seconds)."""
    import torch

    from letitwag.models import load_encoder

    encoder = load_encoder(spec, device=device, precision=precision)
    if compile_tower:
        encoder.compile_images()
    pixels = torch.randn(batch_size, 3, 224, 224, device=device)
    started = time.perf_counter()
    encoder.encode_images(pixels)
    _synchronize(device)
    first = time.perf_counter() - started
    encoder.encode_images(pixels)
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(batches):
        encoder.encode_images(pixels)
    _synchronize(device)
    return {"precision": precision, "compiled": compile_tower, "images_per_s": batch_size * batches / (time.perf_counter() - started),
            "first_batch_s": first}


def _jpeg_bytes(root: Path, count: int) -> list[bytes]:
    """The first ``count`` images of the folder the device would decode."""
    from letitwag.harness.data import open_dataset
    from letitwag.pixels.jpeg import device_route

    rows = open_dataset(str(root)).dataset
    found = []
    for index in range(len(rows)):
        data = rows[index]["image"]["bytes"]
        if data and device_route(data) is None:
            found.append(data)
            if len(found) == count:
                break
    return found


def decode_only(root: Path, preprocess, device: str, batch_size: int, batches: int) -> dict:
    """Device decoding + resize/crop/normalise alone, from pinned host memory: images/s."""
    from letitwag.harness.images import decode_with_preprocess
    from letitwag.pixels.decoder import DeviceDecoder, byte_views, pack_bytes, resolve_decode

    datas = _jpeg_bytes(root, batch_size * (batches + 1))
    decoder = DeviceDecoder(resolve_decode("gpu", device, preprocess).recipe, device,
                            lambda data: decode_with_preprocess(data, preprocess))
    packed = []
    for start in range(0, len(datas), batch_size):
        blob, offsets = pack_bytes(datas[start : start + batch_size])
        packed.append(byte_views(blob.pin_memory() if str(device).startswith("cuda") else blob, offsets))
    decoder(packed[0])
    _synchronize(device)
    started = time.perf_counter()
    for views in packed[1:]:
        decoder(views)
    _synchronize(device)
    images = sum(len(views) for views in packed[1:])
    return {"images": images, "images_per_s": images / (time.perf_counter() - started)}


def read_only(root: Path, preprocess, batch_size: int, images: int, workers: int, pin: bool) -> dict:
    """The DataLoader alone on the device path (read bytes, hash, route, pack, pin): images/s."""
    import torch

    from letitwag.harness.data import open_dataset
    from letitwag.harness.images import ImageRows, collate_for_device, decode_worker_init

    data = open_dataset(str(root))
    indices = np.arange(min(images, data.num_rows))
    rows = ImageRows(data.dataset, data.image_column, data.label_column, indices, preprocess, device_decode=True)
    batches = [list(range(start, min(start + batch_size, len(indices)))) for start in range(0, len(indices), batch_size)]
    loader = torch.utils.data.DataLoader(rows, batch_sampler=batches, num_workers=workers, collate_fn=collate_for_device,
                                         pin_memory=pin, worker_init_fn=decode_worker_init if workers else None)
    started = time.perf_counter()
    count = sum(len(batch.positions) for batch in loader)
    return {"images": count, "workers": workers, "images_per_s": count / (time.perf_counter() - started)}


def tensor_vs_pil(spec: str, root: Path, device: str, indices: np.ndarray, batch_size: int) -> dict:
    """The device path's pixels (float32 resampling, as on a GPU) against the model's PIL
    preprocessing of the same images, and the fp32 model's top-1 on each (same batches)."""
    import torch

    from letitwag.harness.classification import build_classifier
    from letitwag.harness.data import open_dataset
    from letitwag.harness.images import decode_with_preprocess
    from letitwag.harness.prompts import resolve_prompts
    from letitwag.models import load_encoder
    from letitwag.pixels.decoder import DeviceDecoder, byte_views, pack_bytes, resolve_decode
    from letitwag.pixels.jpeg import device_route

    encoder = load_encoder(spec, device=device, precision="fp32")
    data = open_dataset(str(root))
    prompts = resolve_prompts(None, data.templates, str(root))
    classifier = torch.from_numpy(build_classifier(encoder, data.prompt_names, prompts, 256)).to(device)
    fallback = lambda blob: decode_with_preprocess(blob, encoder.preprocess)  # noqa: E731
    decoder = DeviceDecoder(resolve_decode("gpu", device, encoder.preprocess).recipe, device, fallback, exact=False)
    std = torch.tensor(decoder.preprocess.recipe.std, device=device)[:, None, None]
    datas = [data.dataset[int(i)]["image"]["bytes"] for i in indices]
    datas = [d for d in datas if d and device_route(d) is None]
    same, levels_sum, levels_max, differing, pixels_total = 0, 0.0, 0.0, 0, 0
    for start in range(0, len(datas), batch_size):
        part = datas[start : start + batch_size]
        blob, offsets = pack_bytes(part)
        ours, ok = decoder(byte_views(blob, offsets))
        reference = torch.stack([fallback(d) for d, good in zip(part, ok) if good]).to(device)
        levels = ((ours - reference).abs() * std * 255).round()
        levels_sum += float(levels.sum())
        levels_max = max(levels_max, float(levels.max()))
        differing += int((levels > 0).sum())
        pixels_total += levels.numel()
        top1 = [(encoder.encode_images(batch) @ classifier.T).argmax(dim=1) for batch in (ours, reference)]
        same += int((top1[0] == top1[1]).sum())
    return {"images": len(datas), "top1_identical": same / max(1, len(datas)),
            "mean_level_difference": levels_sum / max(1, pixels_total), "max_level_difference": levels_max,
            "share_of_values_differing": differing / max(1, pixels_total)}


# --- the run ---------------------------------------------------------------------------------

def environment(device: str) -> dict:
    import numpy
    import torch
    import torchvision

    described = {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__,
                 "python": sys.version.split()[0], "cpus": os.cpu_count(), "device": device}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        described["gpu"] = torch.cuda.get_device_name(0)
    return described


class Report:
    """gpu_bench.json, rewritten atomically after every step; steps that fail keep their error."""

    def __init__(self, out: Path, budget: float) -> None:
        self.out, self.budget, self.started = out, budget, time.perf_counter()
        self.data: dict = {"steps": {}, "skipped": {}, "errors": {}}
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.started)

    def step(self, name: str, estimate: float, function, *args, **kwargs):
        """Run ``function`` if ``estimate`` seconds fit in the budget; record its result or error."""
        if self.left() < estimate:
            self.data["skipped"][name] = f"needs ~{estimate:.0f} s, {self.left():.0f} s of the budget left"
            print(f"[{name}] skipped: {self.data['skipped'][name]}", flush=True)
            self.save()
            return None
        print(f"[{name}] running ({self.left():.0f} s of the budget left)", flush=True)
        started = time.perf_counter()
        try:
            result = function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - recorded; the other steps still run
            self.data["errors"][name] = f"{type(error).__name__}: {str(error)[:2000]}"
            print(f"[{name}] FAILED: {self.data['errors'][name]}", flush=True)
            self.save()
            return None
        self.data["steps"][name] = result
        print(f"[{name}] done in {time.perf_counter() - started:.1f} s: {json.dumps(_brief(result))}", flush=True)
        self.save()
        return result

    def save(self) -> None:
        tmp = self.out / "gpu_bench.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.out / "gpu_bench.json")


def _brief(result) -> dict:
    if not isinstance(result, dict):
        return {}
    return {k: v for k, v in result.items() if k in ("images", "images_per_s", "image_loop_s", "top1_identical", "top1_agreement",
                                                        "shards", "write_seconds", "mean_jpeg_kb", "first_batch_s")}


def summarise(data: dict, device_name: str) -> dict:
    """The issue's figures side by side with their targets."""
    steps = data["steps"]
    figures = {"device": device_name}
    bf16 = steps.get("letitwag_vit_b_32_bf16_gpu_decode")
    peer_default, peer_cores = steps.get("clip_benchmark_default"), steps.get("clip_benchmark_num_workers_cores")
    if bf16:
        figures["bf16_images_per_s"] = bf16["images_per_s"]
        figures["bf16_image_loop_s"] = bf16["image_loop_s"]
        figures["bf16_full_loop_under_30_s"] = bf16["images"] >= LET_IT_WAG_IMAGES and bf16["image_loop_s"] < TARGET_SECONDS
        figures["bf16_gpu_util_mean"] = (bf16.get("gpu") or {}).get("gpu_util_mean")
        seconds = bf16["profile_s"]
        figures["bf16_time_split_s"] = {key: seconds.get(key) for key in
                                        ("image_features", "data_wait", "forward", "read_wait", "device_decode")}
        for name, peer in (("default", peer_default), ("num_workers_cores", peer_cores)):
            if peer:
                figures[f"ratio_vs_clip_benchmark_{name}"] = bf16["images_per_s"] / peer["images_per_s"]
    subset = steps.get("letitwag_vit_b_32_bf16_gpu_decode_subset")
    if subset and not bf16:  # the full loop did not fit: its time at the subset's rate
        figures["bf16_subset_images_per_s"] = subset["images_per_s"]
        figures["bf16_full_loop_s_at_subset_rate"] = LET_IT_WAG_IMAGES / subset["images_per_s"]
    for key in ("agreement_gpu_fp32_vs_cpu_fp32", "agreement_gpu_bf16_vs_cpu_fp32", "agreement_gpu_bf16_vs_gpu_fp32"):
        if key in steps:
            figures[key] = steps[key]["top1_agreement"]
    if "agreement_gpu_fp32_vs_cpu_fp32" in figures:
        figures["gpu_fp32_agreement_at_least_99_5"] = figures["agreement_gpu_fp32_vs_cpu_fp32"] >= TARGET_AGREEMENT
    if bf16 and peer_default:
        figures["bf16_at_least_3x_clip_benchmark_default"] = figures["ratio_vs_clip_benchmark_default"] >= TARGET_RATIO
    return figures


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-out/gpu"), help="gpu_bench.json, gpu_bench.md")
    parser.add_argument("--work", type=Path, default=None, help="dataset, weights, runs (default: OUT/work)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --quick: a smoke run)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: 300 images, 12 classes, 4 templates")
    parser.add_argument("--images", type=int, default=None, help=f"images (default {LET_IT_WAG_IMAGES:,})")
    parser.add_argument("--classes", type=int, default=None, help=f"classes (default {LET_IT_WAG_CLASSES})")
    parser.add_argument("--shard-size", type=int, default=None, help="images per tar (default 1,000)")
    parser.add_argument("--batch-size", type=int, default=256, help="letitwag's batch size (default 256)")
    parser.add_argument("--peer-batch-size", type=int, default=64, help="CLIP_benchmark's (its default: 64)")
    parser.add_argument("--peer-images", type=int, default=None,
                        help="images of the whole shards CLIP_benchmark reads, rounded to shards per worker "
                        "(default 16,000)")
    parser.add_argument("--peer-python", default=None,
                        help="interpreter for CLIP_benchmark (default: its venv if made here, else this one)")
    parser.add_argument("--agreement-images", type=int, default=None, help="the fp32 CPU-decode subset (default 2,000)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="processes writing the dataset (default: CPUs)")
    parser.add_argument("--budget-s", type=float, default=300.0, help="stop starting steps after this (default 300)")
    parser.add_argument("--also-large", action="store_true", help="ViT-L-14 too (bf16, and CLIP_benchmark default)")
    parser.add_argument("--compile-probe", action="store_true",
                        help="time a compiled image tower's first batch and steady rate (does --compile pay?)")
    args = parser.parse_args()
    quick = args.quick
    args.images = args.images or (300 if quick else LET_IT_WAG_IMAGES)
    args.classes = args.classes or (12 if quick else LET_IT_WAG_CLASSES)
    args.shard_size = args.shard_size or (20 if quick else 1000)
    args.peer_images = args.peer_images or (160 if quick else 16_000)
    args.agreement_images = args.agreement_images or (64 if quick else 2000)
    if quick:
        args.batch_size = min(args.batch_size, 32)
    if args.peer_python is None and not clip_benchmark_env.is_ready():
        args.peer_python = sys.executable
    args.work = args.work or args.out / "work"
    return args


def main() -> None:
    import logging

    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    from letitwag.harness.prompts import resolve_prompts

    report = Report(args.out, args.budget_s)
    report.data.update(environment=environment(args.device), args={k: str(v) for k, v in vars(args).items()})
    device_name = report.data["environment"].get("gpu", f"CPU x{os.cpu_count()}")
    print(f"device: {device_name}; {json.dumps(report.data['environment'])}", flush=True)
    templates = list(resolve_prompts("ensemble", None, "gpu_bench").templates)[: 4 if args.quick else None]
    data = report.step("dataset", 0, write_dataset, args.work / "wds_letitwag_synthetic", args.images, args.classes,
                       args.shard_size, templates, args.jobs)
    if data is None:
        return
    root = Path(data["root"])
    cores = os.cpu_count() or 1
    b32_checkpoint = random_checkpoint(args.work / "weights", arch="ViT-B-32")
    b32 = f"open_clip:ViT-B-32/{b32_checkpoint}"
    subset = args.agreement_images
    with Utilisation() as gpu:
        # the 2,000-image subset first: both agreements, and a rate to size the full runs by
        reference = report.step("letitwag_vit_b_32_fp32_cpu_decode_subset", 0, run_letitwag, "b32-fp32-cpu-subset",
                                b32, root, args, args.work, "fp32", "cpu", limit=subset, gpu=gpu)
        fp32_subset = report.step("letitwag_vit_b_32_fp32_gpu_decode_subset", 0, run_letitwag, "b32-fp32-gpu-subset",
                                  b32, root, args, args.work, "fp32", "gpu", limit=subset, gpu=gpu)
        bf16_subset = report.step("letitwag_vit_b_32_bf16_gpu_decode_subset", 0, run_letitwag, "b32-bf16-gpu-subset",
                                  b32, root, args, args.work, "bf16", "gpu", limit=subset, gpu=gpu)
        for name, low, high in (("agreement_gpu_fp32_vs_cpu_fp32", fp32_subset, reference),
                                ("agreement_gpu_bf16_vs_cpu_fp32", bf16_subset, reference),
                                ("agreement_gpu_bf16_vs_gpu_fp32", bf16_subset, fp32_subset)):
            if low and high:
                report.step(name, 0, precision_agreement, low, high)
        rate = bf16_subset["images_per_s"] if bf16_subset else 500.0
        report.step("letitwag_vit_b_32_bf16_gpu_decode", 20 + args.images / rate, run_letitwag, "b32-bf16-gpu", b32,
                    root, args, args.work, "bf16", "gpu", gpu=gpu)
        unit = math.lcm(4, cores)  # whole shards per DataLoader worker for both of CLIP_benchmark's settings
        peer_shards = min(data["shards"], max(unit, round(args.peer_images / args.shard_size / unit) * unit))
        peer_root = shard_subset(root, peer_shards)
        peer_estimate = 30 + peer_shards * args.shard_size / 600
        report.step("clip_benchmark_default", peer_estimate, run_peer, "default", "ViT-B-32", b32_checkpoint, peer_root,
                    args, 4, gpu=gpu)
        report.step("clip_benchmark_num_workers_cores", peer_estimate, run_peer, "cores", "ViT-B-32", b32_checkpoint,
                    peer_root, args, cores, gpu=gpu)
        fp32_rate = fp32_subset["images_per_s"] if fp32_subset else 300.0
        report.step("letitwag_vit_b_32_fp32_gpu_decode", 20 + args.images / fp32_rate, run_letitwag, "b32-fp32-gpu",
                    b32, root, args, args.work, "fp32", "gpu", gpu=gpu)
    from letitwag.models import load_encoder

    preprocess = load_encoder(b32, device="cpu").preprocess
    batches = 4 if args.quick else 40
    report.step("alone_forward_bf16", 20, forward_only, b32, args.device, "bf16", args.batch_size, batches)
    report.step("alone_forward_fp32", 20, forward_only, b32, args.device, "fp32", args.batch_size, batches)
    report.step("alone_device_decode_and_resize", 20, decode_only, root, preprocess, args.device, args.batch_size,
                batches // 2)
    report.step("alone_read_bytes", 20, read_only, root, preprocess, args.batch_size, min(args.images, 40_000),
                min(cores, 8), str(args.device).startswith("cuda"))
    indices = np.random.default_rng(0).choice(data["images"], size=min(args.agreement_images, data["images"]),
                                              replace=False)
    report.step("tensor_path_vs_pil_path", 40, tensor_vs_pil, b32, root, args.device, np.sort(indices),
                args.batch_size)
    if args.also_large:
        l14_checkpoint = random_checkpoint(args.work / "weights", arch="ViT-L-14")
        l14 = f"open_clip:ViT-L-14/{l14_checkpoint}"
        with Utilisation() as gpu:
            report.step("letitwag_vit_l_14_bf16_gpu_decode", 60, run_letitwag, "l14-bf16-gpu", l14, root, args,
                        args.work, "bf16", "gpu", gpu=gpu)
            report.step("clip_benchmark_vit_l_14_default", peer_estimate * 2, run_peer, "l14-default", "ViT-L-14",
                        l14_checkpoint, peer_root, args, 4, gpu=gpu)
    if args.compile_probe:
        report.step("alone_forward_bf16_compiled", 120, forward_only, b32, args.device, "bf16", args.batch_size, batches,
                    compile_tower=True)
    report.data["summary"] = summarise(report.data, device_name)
    report.save()
    write_markdown(report.data, args.out / "gpu_bench.md")
    print((args.out / "gpu_bench.md").read_text(), flush=True)


def write_markdown(data: dict, path: Path) -> None:
    """A table of every run and the summary, for the report and the README."""
    summary = data.get("summary", {})
    lines = [f"# gpu_bench on {summary.get('device')}", "",
             "| run | images | image loop s | images/s | GPU util % (mean) |", "| --- | --- | --- | --- | --- |"]
    for name, step in data["steps"].items():
        if isinstance(step, dict) and "images_per_s" in step:
            util = (step.get("gpu") or {}).get("gpu_util_mean")
            lines.append(f"| {name} | {step.get('images', '')} | {step.get('image_loop_s', float('nan')):.1f} | "
                         f"{step['images_per_s']:.0f} | {'' if util is None else f'{util:.0f}'} |")
    lines += ["", "```json", json.dumps(summary, indent=2), "```"]
    if data["skipped"] or data["errors"]:
        lines += ["", "skipped: " + json.dumps(data["skipped"]), "errors: " + json.dumps(data["errors"])]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
