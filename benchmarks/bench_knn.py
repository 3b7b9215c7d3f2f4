"""Load test of `letitwag knn serve`: 64 concurrent clients on loopback against a 100,000-vector index.

Claim (issue 3): at least 200 queries/s with p99 latency under 100 ms and zero errors.

What it does, all on 127.0.0.1 and bounded in requests and time:
1. builds the tiny RANDOM-WEIGHT open_clip model (plumbing model: text queries really go
   through a model forward, but similarities mean nothing) in a temporary folder;
2. writes a SYNTHETIC index: random L2-normalised vectors of the model's dimension plus one
   metadata row each (embedding 100k real images on 2 CPU cores is not what is measured);
3. starts `python -m letitwag knn serve` on a free port and waits for /health;
4. runs N clients (keep-alive HTTP/1.1 connections on asyncio streams) sending a fixed number of requests: a mix of
   `embedding_input` queries (random vectors) and `text` queries built from the Let it Wag!
   concept names and templates (the first of each text is a model forward, repeats hit the
   server's cache), `num_images` 40 (clip-retrieval client's default), half with `deduplicate`;
5. prints qps, p50/p95/p99 latency and errors against the targets, then stops the server.

Usage:
    python benchmarks/bench_knn.py            # 100,000 vectors, 64 clients, 6,000 requests at 250 q/s
    python benchmarks/bench_knn.py --quick    # 10,000 vectors, 16 clients, 400 requests at 100 q/s
    python benchmarks/bench_knn.py --rate 0   # closed loop: the server's capacity
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_QPS = 200.0
TARGET_P99_MS = 100.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_index(folder: Path, count: int, seed: int) -> tuple[Path, int]:
    """Tiny random-weight model + synthetic index of ``count`` random unit vectors."""
    import pyarrow as pa

    from letitwag.builders.knn.store import write_index
    from letitwag.models.tiny import TINY_OPEN_CLIP_CONFIG, build_tiny_open_clip

    spec = build_tiny_open_clip(folder / "tiny-model")
    dim = TINY_OPEN_CLIP_CONFIG["embed_dim"]
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metadata = pa.table({
        "image_path": [f"/synthetic/{i:07d}.jpg" for i in range(count)],
        "url": [f"http://127.0.0.1/synthetic/{i:07d}.jpg" for i in range(count)],
        "caption": [f"synthetic caption {i}" for i in range(count)],
    })
    index_dir = folder / "synthetic.index"
    write_index(index_dir, vectors, metadata, {"model": spec, "synthetic": True,
                                                "note": "random unit vectors for load testing"})
    return index_dir, dim


def text_queries(limit: int) -> list[str]:
    """Prompts as the ``knn:`` collect source builds them: each concept with each template in turn."""
    from letitwag.concepts import bundled_concepts
    from letitwag.data import read_bundled_json

    templates = read_bundled_json("templates.json")["ensemble"]
    names = [concept.name for concept in bundled_concepts("let-it-wag")]
    return [template.format(c=name) for template in templates for name in names][:limit]


def request_bodies(total: int, dim: int, text_fraction: float, num_images: int, seed: int,
                   distinct_texts: int) -> list[bytes]:
    rng = random.Random(seed)
    texts = text_queries(distinct_texts)
    bodies = []
    for i in range(total):
        body: dict = {"num_images": num_images, "modality": "image", "indice_name": "synthetic",
                      "deduplicate": i % 2 == 0}
        if rng.random() < text_fraction:
            body["text"] = rng.choice(texts)
        else:
            vector = [rng.gauss(0, 1) for _ in range(dim)]
            body["embedding_input"] = vector
        bodies.append(json.dumps(body).encode())
    return bodies


async def _post(reader, writer, body: bytes, timeout: float) -> bool:
    """One POST on a kept-alive connection; True for a 200 with a JSON list body."""
    writer.write(b"POST /knn-service HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    status = await asyncio.wait_for(reader.readline(), timeout)
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), timeout)) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    payload = await asyncio.wait_for(reader.readexactly(length), timeout)
    return status.split(b" ", 2)[1:2] == [b"200"] and payload.startswith(b"[")


async def load(port: int, bodies: list[bytes], clients: int, deadline_s: float, rate: float) -> tuple[list[float], int, float]:
    """``clients`` keep-alive connections sending ``bodies`` until done or the deadline.

    With ``rate`` > 0 the load is open-loop, as wrk2 does it: request i is due at
    ``start + i / rate`` and its latency counts from that moment, so a server that falls behind
    is charged for the queueing it causes (no coordinated omission). With ``rate`` 0 every
    client sends its next request as soon as the last is answered (closed loop: capacity).
    A minimal HTTP/1.1 client on asyncio streams: on a 2-core machine the load generator must
    cost far less CPU than the server it measures (httpx costs about as much as the server).
    """
    latencies: list[float] = []
    errors = 0
    position = 0
    started = time.perf_counter()
    stop_at = started + deadline_s

    async def client() -> None:
        nonlocal position, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while position < len(bodies) and time.perf_counter() < stop_at:
                number, position = position, position + 1
                due = started + number / rate if rate > 0 else time.perf_counter()
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                try:
                    ok = await _post(reader, writer, bodies[number], timeout=30)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                latencies.append(time.perf_counter() - due)
                errors += not ok
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors, time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    """CPU time used so far by the server and its worker processes."""
    import psutil

    process = psutil.Process(pid)
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = member.cpu_times()
            total += times.user + times.system
    return total


@contextlib.contextmanager
def running_server(index_dir: Path, port: int, workers: int, log_path: Path):
    command = [sys.executable, "-m", "letitwag", "--log-level", "WARNING", "knn", "serve",
               f"synthetic={index_dir}", "--port", str(port), "--workers", str(workers)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        import httpx

        workers_seen: set[int] = set()
        deadline = time.monotonic() + 300
        while len(workers_seen) < workers:  # every worker must have loaded its model before timing
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(workers_seen)} of {workers} workers came up within 300 s")
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)  # a new connection each time
                workers_seen.add(response.json()["worker_pid"])
                continue
            time.sleep(0.5)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k vectors, 16 clients, 400 requests at 100 q/s")
    parser.add_argument("--count", type=int, default=100_000, help="vectors in the synthetic index")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=6000, help="total requests (bounded)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long")
    parser.add_argument("--text-fraction", type=float, default=0.5, help="share of text queries")
    parser.add_argument("--distinct-texts", type=int, default=580,
                        help="distinct query texts (290 concepts x 2 templates): first use = model forward")
    parser.add_argument("--num-images", type=int, default=40, help="num_images per query")
    parser.add_argument("--rate", type=float, default=250.0,
                        help="offered load in queries/s spread over the clients (open loop); 0 = closed loop")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.count, args.clients, args.requests, args.rate = 10_000, 16, 400, 100.0

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-knn-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        index_dir, dim = make_index(folder, args.count, args.seed)
        print(f"synthetic index: {args.count:,} random unit vectors, dim {dim} (tiny random-weight model), "
              f"built in {time.perf_counter() - started:.1f} s")
        bodies = request_bodies(args.requests, dim, args.text_fraction, args.num_images, args.seed, args.distinct_texts)
        warmup = request_bodies(64, dim, 0.0, args.num_images, args.seed + 1, 1)
        forwards = len({json.loads(body).get("text") for body in bodies} - {None})
        with running_server(index_dir, free_port(), args.workers, folder / "server.log") as (port, server_pid):
            asyncio.run(load(port, warmup, min(args.clients, 8), 60, 0))
            server_cpu = _cpu_seconds(server_pid)
            client_cpu = time.process_time()
            latencies, errors, elapsed = asyncio.run(load(port, bodies, args.clients, args.max_seconds, args.rate))
            server_cpu = _cpu_seconds(server_pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
    sent = len(latencies)
    qps = sent / elapsed
    p50, p95, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 95, 99))
    offered = f"offered {args.rate:.0f} q/s (open loop)" if args.rate > 0 else "closed loop"
    print(f"load: {args.clients} clients, {sent} requests, {offered}, {args.text_fraction:.0%} text / rest "
          f"embedding_input, num_images {args.num_images}, {args.workers} server worker(s), loopback, "
          f"{os.cpu_count()} CPUs, load average before {load_before:.1f}")
    print(f"text queries: {forwards} distinct texts (each one model forward of the tiny model), repeats cached")
    print(f"CPU per request: server {server_cpu / sent * 1000:.2f} ms, load generator {client_cpu / sent * 1000:.2f} ms "
          f"(capacity of one free core ~ {sent / max(server_cpu, 1e-9):.0f} q/s)")
    print(f"qps {qps:.1f} (target >= {TARGET_QPS:.0f})")
    print(f"latency ms: p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f} (target p99 < {TARGET_P99_MS:.0f})")
    print(f"errors {errors} (target 0)")
    passed = qps >= TARGET_QPS and p99 < TARGET_P99_MS and errors == 0
    scale = "" if args.count >= 100_000 and args.clients >= 64 else " (reduced size: not the claim's setting)"
    print(f"result: {'PASS' if passed else 'FAIL'}{scale}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
