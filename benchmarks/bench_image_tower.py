"""How fast can this CPU run ViT-B-32's image tower in fp32 at all? The ceiling behind issue 4's 1.3x.

Issue 4 asks letitwag's image loop for >= 1.3x CLIP_benchmark's images/s in fp32. This script
measures, in one run, what bounds that on the machine at hand:
1. the model's FLOPs per image (counted by ``torch.utils.flop_counter`` on a real forward, in
   train mode: in eval mode attention takes a fused kernel the counter does not see);
2. the fp32 matrix-product rate of the model's largest product (the MLP's 3,200 x 768 x 3,072
   at batch 64) on 1 and on all threads: the GEMM-only ceiling in images/s;
3. the image tower's own rate at batch 64: eager on 1 and on all threads, eager in one
   one-thread process per core running at the same time (data parallelism across processes),
   letitwag's ``--cpu-streams`` layout (one batch per core on one-thread threads of one
   process, ``letitwag.harness.streams``) with the full tower, with letitwag's tower (fused
   attention and a class-token-only last block, ``letitwag.models.open_clip_cls_tower``, what
   the harness runs for fp32 ViTs; also alone on one thread, against the eager tower), and
   with that tower and the heap reuse of ``letitwag.harness.allocator`` (all the harness's
   CPU defaults together),
   and ``torch.compile`` with frozen weights (what ``--compile on`` uses);
4. the target, from CLIP_benchmark's rate in ``bench-out/evaluate/report.json`` (written by
   ``bench_evaluate.py``) or ``--clip-benchmark-img-per-s``.

Random weights: a plumbing model; only speed is measured.

    python benchmarks/bench_image_tower.py
    python benchmarks/bench_image_tower.py --no-compile --clip-benchmark-img-per-s 11.9
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

BATCH = 64
TARGET_RATIO = 1.3


def best_seconds(function, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_rate(threads: int, repeats: int) -> float:
    """GFLOP/s of the MLP's product (tokens of a batch x 768) @ (768 x 3,072) on ``threads`` threads."""
    torch.set_num_threads(threads)
    left, right = torch.randn(BATCH * 50, 768), torch.randn(3072, 768)
    seconds = best_seconds(lambda: torch.nn.functional.linear(left, right), repeats)
    return 2 * left.shape[0] * 768 * 3072 / seconds / 1e9


def tower_rate(tower, pixels: torch.Tensor, threads: int, repeats: int) -> float:
    """Images/s of ``tower`` at batch ``len(pixels)`` on ``threads`` threads."""
    torch.set_num_threads(threads)
    with torch.inference_mode():
        return len(pixels) / best_seconds(lambda: tower(pixels), repeats)


def vit_b_32_tower():
    import open_clip

    torch.manual_seed(0)
    return open_clip.create_model("ViT-B-32", pretrained=None).eval().visual


def streams_rate(tower, pixels: torch.Tensor, streams: int, repeats: int) -> float:
    """Images/s of ``streams`` batches encoded at once on one-thread threads, as the harness does."""
    from letitwag.harness.streams import OrderedStreams, intra_op_threads

    def encode_all():
        with torch.inference_mode(), OrderedStreams(lambda batch: _inference(tower, batch), streams) as running:
            for index in range(streams):
                running.submit(index, pixels)
            running.drain()

    with intra_op_threads(1):
        return streams * len(pixels) / best_seconds(encode_all, repeats)


def _inference(tower, batch):
    with torch.inference_mode():  # thread-local: entered in the stream's own thread
        return tower(batch)


def concurrent_one_thread_rates(processes: int, repeats: int) -> list[float]:
    """Eager images/s of ``processes`` one-thread processes running at the same time."""
    command = [sys.executable, __file__, "--one-thread-child", "--repeats", str(repeats)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for _ in range(processes)]
    return [float(child.communicate()[0].strip().splitlines()[-1]) for child in children]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog="example: python benchmarks/bench_image_tower.py --no-compile")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement, best kept (default 3)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (it takes ~20 s on 2 cores)")
    parser.add_argument("--clip-benchmark-img-per-s", type=float, default=None,
                        help="CLIP_benchmark's fp32 images/s (default: read from bench-out/evaluate/report.json)")
    parser.add_argument("--one-thread-child", action="store_true", help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    from torch.utils.flop_counter import FlopCounterMode

    tower = vit_b_32_tower()
    pixels = torch.randn(BATCH, 3, 224, 224)
    if args.one_thread_child:
        print(tower_rate(tower, pixels, 1, args.repeats))
        return
    cores = torch.get_num_threads()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        tower.train()(pixels[:1])
    tower.eval()
    gflop = counter.get_total_flops() / 1e9

    gemm = {threads: gemm_rate(threads, args.repeats) for threads in sorted({1, cores})}
    eager = {threads: tower_rate(tower, pixels, threads, args.repeats) for threads in sorted({1, cores})}
    together = concurrent_one_thread_rates(cores, args.repeats) if cores > 1 else []
    from letitwag.models.open_clip_cls_tower import class_token_features

    fused = lambda batch: class_token_features(tower, batch)  # noqa: E731
    fused_one_thread = tower_rate(fused, pixels, 1, args.repeats)
    streams = {}
    if cores > 1:
        from letitwag.harness.allocator import reuse_freed_memory

        streams["full tower"] = streams_rate(tower, pixels, cores, args.repeats)
        streams["letitwag's tower"] = streams_rate(fused, pixels, cores, args.repeats)
        with reuse_freed_memory():
            streams["letitwag's tower + heap reuse"] = streams_rate(fused, pixels, cores, args.repeats)
    compiled = None
    if not args.no_compile:
        torch.set_num_threads(cores)
        frozen = torch.compile(tower, dynamic=False, options={"freezing": True})
        compiled = tower_rate(frozen, pixels, cores, args.repeats)

    peer = args.clip_benchmark_img_per_s
    report = Path("bench-out/evaluate/report.json")
    if peer is None and report.is_file():
        peer = json.loads(report.read_text())["clip_benchmark_img_per_s"]

    print(f"ViT-B-32 image tower: {gflop:.2f} GFLOP per image (counted), batch {BATCH}, {cores} threads available")
    for threads, rate in gemm.items():
        print(f"fp32 GEMM {BATCH * 50}x768x3072 on {threads} thread(s): {rate:6.1f} GFLOP/s -> "
              f"GEMM-only ceiling {rate / gflop:5.2f} images/s")
    if cores > 1:
        print(f"  {cores} one-thread processes: ceiling {cores * gemm[1] / gflop:5.2f} images/s")
    for threads, rate in eager.items():
        print(f"eager tower on {threads} thread(s): {rate:5.2f} images/s")
    print(f"letitwag's tower (fused attention, class-token last block) on 1 thread: {fused_one_thread:5.2f} images/s "
          f"= {fused_one_thread / eager[1]:.2f}x the eager tower")
    if together:
        print(f"eager tower in {cores} one-thread processes at once: {sum(together):5.2f} images/s in all "
              f"({', '.join(f'{rate:.2f}' for rate in together)})")
    for name, rate in streams.items():
        print(f"letitwag --cpu-streams {cores} ({cores} one-thread batches in one process), {name}: {rate:5.2f} images/s")
    if compiled is not None:
        print(f"torch.compile (frozen weights) on {cores} threads: {compiled:5.2f} images/s")
    if peer:
        best_ceiling = max(max(gemm.values()), cores * gemm[1]) / gflop
        best_tower = max([*eager.values(), sum(together), *streams.values(), compiled or 0.0])
        target = TARGET_RATIO * peer
        print(f"target: {TARGET_RATIO} x CLIP_benchmark's {peer:.2f} = {target:.2f} images/s; best GEMM-only ceiling "
              f"{best_ceiling:.2f} ({best_ceiling / target:.2f}x the target); best tower rate {best_tower:.2f} "
              f"({best_tower / target:.2f}x the target, before data loading and JPEG decoding)")


if __name__ == "__main__":
    main()
