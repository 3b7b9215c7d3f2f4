"""Load test of `letitwag knn serve` at real CLIP widths: 64 clients on loopback, 100,000 vectors.

Claim (issues 3 and 15): at 512 (ViT-B/32) and 768 (ViT-L/14) dimensions, at least 200
queries/s with p99 latency under 100 ms and zero errors, 64 clients open loop at 250 q/s.

What it does, for each width in ``--dims``, all on 127.0.0.1 and bounded in requests and time:
1. builds a tiny RANDOM-WEIGHT open_clip model whose towers end in that width (plumbing
   model: text queries really go through a model forward, but similarities mean nothing);
2. writes a SYNTHETIC exact (flat) index: random L2-normalised vectors of that width plus one
   metadata row each (embedding 100k real images on 2 CPU cores is not what is measured; the
   cost of an exact search does not depend on where the vectors lie);
3. starts `python -m letitwag knn serve` on a free port and waits for every worker's /health;
4. runs N clients (keep-alive HTTP/1.1 connections on asyncio streams) sending a fixed number of
   requests: a mix of `embedding_input` queries (random vectors, full float repr as numpy's
   tolist() gives them) and `text` queries built from the Let it Wag! concept names and
   templates (the first of each text is a model forward, repeats hit the server's cache),
   `num_images` 40 (clip-retrieval client's default), half with `deduplicate`;
   before the load, it times the stages alone in its own process: the exact scan per batch
   (float32, and the int8 pass where the CPU has it), the int8 codes' start-up cost, one full
   garbage collection in a fresh process holding a worker's state;
5. prints q/s, p50/p95/p99 latency, errors and the server's CPU time per request (robust to
   other load on the machine, unlike latency), then a table of all widths against the targets.

``--index DIR`` load-tests an index built elsewhere (e.g. the 10M-vector one of
``benchmarks/knn_scale.py``) with `embedding_input` queries from ``--queries FILE.npy``.

Usage:
    python benchmarks/bench_knn.py                  # widths 512 and 768, 100,000 vectors, 6,000 requests at 250 q/s
    python benchmarks/bench_knn.py --dims 512       # one width
    python benchmarks/bench_knn.py --quick          # 10,000 vectors, 16 clients, 400 requests at 100 q/s
    python benchmarks/bench_knn.py --rate 0         # closed loop: the server's capacity
    python benchmarks/bench_knn.py --index bench-out/knn-scale/index --queries bench-out/knn-scale/queries.npy
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TARGET_QPS = 200.0
TARGET_P99_MS = 100.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_index(folder: Path, count: int, dim: int, seed: int) -> Path:
    """Tiny random-weight model of width ``dim`` + synthetic flat index of ``count`` random unit vectors."""
    import pyarrow as pa

    from letitwag.builders.knn.store import write_index
    from letitwag.models.tiny import build_tiny_open_clip

    spec = build_tiny_open_clip(folder / f"tiny-model-{dim}", embed_dim=dim)
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metadata = pa.table({
        "image_path": [f"/synthetic/{i:07d}.jpg" for i in range(count)],
        "url": [f"http://127.0.0.1/synthetic/{i:07d}.jpg" for i in range(count)],
        "caption": [f"synthetic caption {i}" for i in range(count)],
    })
    index_dir = folder / f"synthetic-{dim}.index"
    write_index(index_dir, vectors, metadata, {"model": spec, "synthetic": True,
                                                "note": "random unit vectors for load testing"})
    return index_dir


def text_queries(limit: int) -> list[str]:
    """Prompts as the ``knn:`` collect source builds them: each concept with each template in turn."""
    from letitwag.concepts import bundled_concepts
    from letitwag.data import read_bundled_json

    templates = read_bundled_json("templates.json")["ensemble"]
    names = [concept.name for concept in bundled_concepts("let-it-wag")]
    return [template.format(c=name) for template in templates for name in names][:limit]


def request_bodies(total: int, dim: int, text_fraction: float, num_images: int, seed: int,
                   distinct_texts: int, queries: np.ndarray | None = None) -> list[bytes]:
    """JSON bodies; embedding_input vectors are rows of ``queries`` in turn, else Gaussian."""
    rng = random.Random(seed)
    texts = text_queries(distinct_texts) if text_fraction > 0 else []
    bodies = []
    for i in range(total):
        body: dict = {"num_images": num_images, "modality": "image", "indice_name": "bench",
                      "deduplicate": i % 2 == 0}
        if rng.random() < text_fraction:
            body["text"] = rng.choice(texts)
        elif queries is not None:
            body["embedding_input"] = queries[i % len(queries)].astype(np.float32).tolist()
        else:
            body["embedding_input"] = np.float32([rng.gauss(0, 1) for _ in range(dim)]).tolist()
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
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
    gc.collect()
    gc.freeze()  # the generator's own start-up objects: a full collection here would be charged to the server
    started = time.perf_counter()  # after the connections are open: their set-up is not the server's
    stop_at = started + deadline_s

    async def client(reader, writer) -> None:
        nonlocal position, errors
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

    await asyncio.gather(*(client(reader, writer) for reader, writer in connections))
    gc.unfreeze()
    return latencies, errors, time.perf_counter() - started


def scan_stages(index_dir: Path, num_images: int, repeats: int = 20) -> None:
    """Where a worker's time goes, measured before the load: the exact scan per batch on one
    thread (faiss float32 against the int8 pass), the start-up cost of the int8 codes, and one
    full garbage collection in a worker's state (``worker_collection``)."""
    from letitwag.builders.knn.store import open_index, set_search_threads

    set_search_threads(1)
    started = time.perf_counter()
    plain = open_index(index_dir)
    opened = time.perf_counter() - started
    started = time.perf_counter()
    index = open_index(index_dir, int8_scan=True)
    codes_s = time.perf_counter() - started - opened
    rng = np.random.default_rng(1)
    for batch in (1, 4):
        queries = rng.standard_normal((batch, index.dim)).astype(np.float32)
        timings = {"float32": lambda: plain.vectors.search(queries, num_images)}
        if index.int8 is not None:
            timings["int8"] = lambda: index.int8.scores(queries)
        spent = {}
        for name, call in timings.items():
            call()
            clock = time.perf_counter()
            for _ in range(repeats):
                call()
            spent[name] = (time.perf_counter() - clock) / repeats * 1000
        figures = ", ".join(f"{name} {ms:.1f} ms" for name, ms in spent.items())
        print(f"  exact scan of {len(index):,} x {index.dim}, batch of {batch}, one thread: {figures}", flush=True)
    if index.int8 is None:
        print("  int8 pass: not used on this CPU (no int8 dot-product instructions): the server scans in float32")
    else:
        print(f"  int8 codes made at start-up in {codes_s:.1f} s ({index.int8.nbytes() / 1e6:.0f} MB per worker)")
    print(f"  {worker_collection(index_dir)}", flush=True)


_WORKER_COLLECTION = """
import gc, json, sys, time
from letitwag.builders.knn.server import ServeSettings, build_service
build_service(ServeSettings(indices={"bench": sys.argv[1]}, load_model=True))
gc.collect()
clock = time.perf_counter()
gc.collect()
print(json.dumps([len(gc.get_objects()), (time.perf_counter() - clock) * 1000]))
"""


def worker_collection(index_dir: Path) -> str:
    """One full garbage collection in a fresh process holding what a server worker holds (the
    service built, model loaded): the pause each collection cost before workers froze their
    start-up objects."""
    output = subprocess.run([sys.executable, "-c", _WORKER_COLLECTION, str(index_dir)], check=True,
                            capture_output=True, text=True).stdout
    objects, milliseconds = json.loads(output.strip().splitlines()[-1])
    return f"one full garbage collection in a process holding a worker's state: {milliseconds:.0f} ms over {objects:,} objects"


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
def running_server(index_dir: Path, port: int, workers: int, log_path: Path, extra: list[str]):
    command = [sys.executable, "-m", "letitwag", "--log-level", "WARNING", "knn", "serve",
               f"bench={index_dir}", "--port", str(port), "--workers", str(workers), *extra]
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


@dataclass
class Measured:
    """One width's load figures."""

    label: str
    sent: int
    qps: float
    p50: float
    p95: float
    p99: float
    errors: int
    server_cpu_ms: float
    client_cpu_ms: float

    @property
    def passed(self) -> bool:
        return self.qps >= TARGET_QPS and self.p99 < TARGET_P99_MS and self.errors == 0


def measure(index_dir: Path, label: str, dim: int, args, folder: Path, queries: np.ndarray | None,
            text_fraction: float, serve_extra: list[str]) -> Measured:
    """Serve ``index_dir``, warm it up, run the load and return its figures."""
    bodies = request_bodies(args.requests, dim, text_fraction, args.num_images, args.seed, args.distinct_texts,
                            queries)
    warmup = request_bodies(64, dim, 0.0, args.num_images, args.seed + 1, 1, queries)
    with running_server(index_dir, free_port(), args.workers, folder / f"server-{label}.log",
                        serve_extra) as (port, server_pid):
        asyncio.run(load(port, warmup, min(args.clients, 8), 60, 0))
        server_cpu = _cpu_seconds(server_pid)
        client_cpu = time.process_time()
        latencies, errors, elapsed = asyncio.run(load(port, bodies, args.clients, args.max_seconds, args.rate))
        server_cpu = _cpu_seconds(server_pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    sent = len(latencies)
    p50, p95, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 95, 99))
    result = Measured(label, sent, sent / elapsed, p50, p95, p99, errors, server_cpu / sent * 1000,
                      client_cpu / sent * 1000)
    print(f"  {label}: {sent} requests, q/s {result.qps:.1f}, latency ms p50 {p50:.1f} p95 {p95:.1f} p99 {p99:.1f}, "
          f"errors {errors}, CPU per request: server {result.server_cpu_ms:.2f} ms, load generator "
          f"{result.client_cpu_ms:.2f} ms", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k vectors, 16 clients, 400 requests at 100 q/s")
    parser.add_argument("--dims", "--dim", type=int, nargs="+", default=[512, 768],
                        help="embedding widths to measure, one server each (512 = ViT-B/32, 768 = ViT-L/14)")
    parser.add_argument("--count", type=int, default=100_000, help="vectors in each synthetic index")
    parser.add_argument("--index", type=Path, default=None,
                        help="load-test this existing index instead of synthetic ones (embedding_input queries)")
    parser.add_argument("--queries", type=Path, default=None,
                        help="float .npy of query vectors for embedding_input (default: Gaussian random)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=6000, help="total requests per width (bounded)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long")
    parser.add_argument("--text-fraction", type=float, default=0.5, help="share of text queries")
    parser.add_argument("--distinct-texts", type=int, default=580,
                        help="distinct query texts (290 concepts x 2 templates): first use = model forward")
    parser.add_argument("--num-images", type=int, default=40, help="num_images per query")
    parser.add_argument("--rate", type=float, default=250.0,
                        help="offered load in queries/s spread over the clients (open loop); 0 = closed loop")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--search-threads", type=int, default=1, help="faiss threads per worker's batched search")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.count, args.clients, args.requests, args.rate = 10_000, 16, 400, 100.0

    load_before = os.getloadavg()[0]
    queries = np.load(args.queries, mmap_mode="r") if args.queries else None
    offered = f"offered {args.rate:.0f} q/s (open loop)" if args.rate > 0 else "closed loop"
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-knn-") as tmp:
        folder = Path(tmp)
        if args.index is not None:
            config = json.loads((args.index / "index.json").read_text())
            print(f"index {args.index}: {config['count']:,} vectors, dim {config['dim']}, {config['index_type']}; "
                  f"load: {args.clients} clients, {args.requests} embedding_input requests, {offered}, "
                  f"{args.workers} worker(s)", flush=True)
            results.append(measure(args.index, f"{config['index_type']} {config['count']:,} x {config['dim']}",
                                   config["dim"], args, folder, queries, 0.0,
                                   ["--no-model", "--search-threads", str(args.search_threads)]))
        else:
            print(f"load: {args.clients} clients, {args.requests} requests per width, {offered}, "
                  f"{args.text_fraction:.0%} text / rest embedding_input, num_images {args.num_images}, "
                  f"{args.workers} server worker(s), loopback, {os.cpu_count()} CPUs, load average before "
                  f"{load_before:.1f}; text queries: each distinct text is one forward of a tiny random-weight "
                  f"model of that width, repeats cached", flush=True)
            for dim in args.dims:
                started = time.perf_counter()
                index_dir = make_index(folder, args.count, dim, args.seed)
                print(f"dim {dim}: synthetic flat index of {args.count:,} random unit vectors built in "
                      f"{time.perf_counter() - started:.1f} s", flush=True)
                scan_stages(index_dir, args.num_images)
                results.append(measure(index_dir, f"dim {dim}", dim, args, folder, queries, args.text_fraction,
                                       ["--search-threads", str(args.search_threads)]))
    print(f"\n| {'index':<28} | q/s    | p50 ms | p95 ms | p99 ms | errors | server CPU ms/request | result |")
    print(f"|{'-' * 30}|--------|--------|--------|--------|--------|-----------------------|--------|")
    for r in results:
        print(f"| {r.label:<28} | {r.qps:6.1f} | {r.p50:6.1f} | {r.p95:6.1f} | {r.p99:6.1f} | {r.errors:6d} | "
              f"{r.server_cpu_ms:21.2f} | {'PASS' if r.passed else 'FAIL':<6} |")
    print(f"targets: q/s >= {TARGET_QPS:.0f}, p99 < {TARGET_P99_MS:.0f} ms, 0 errors; server CPU per request is "
          f"the figure robust to other load on the machine (2 cores serve at most ~2000/CPU-ms q/s)")
    reduced = args.index is None and (args.count < 100_000 or args.clients < 64)
    passed = all(r.passed for r in results)
    print(f"result: {'PASS' if passed else 'FAIL'}{' (reduced size: not the claim setting)' if reduced else ''}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
