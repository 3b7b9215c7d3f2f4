"""Text-frequency benchmark: letitwag's concept counting against the two slow baselines.

Claims (issue 2), on synthetic LAION-like captions (~60 characters) against the 4,128 bundled
concepts in ``phrase`` mode:
* end to end from parquet with 2 local worker processes: >= 1,000,000 captions/s, with the
  default noun forms (issue 13) as with the lookup forms before them (``--forms lookup``) and
  with concept words read as written (``--concept-words as-written``, the reading before concept
  words were lemmatised), all measured in the same run;
* peak RSS (the run and its worker processes together) < 2 GB, independent of corpus size;
* ``phrase`` counts equal the lemmatise-then-match reference for >= 99.9% of concepts;
* ``bag`` counts equal the paper's method re-implemented with spaCy (inverted index) exactly.

What it does, in one run:
1. generates (seeded) and caches the corpus as parquet under ``--out`` (several files, row
   groups of 131,072);
2. letitwag end to end: ``letitwag.frequency.count.count_text`` with the local executor,
   ``--workers`` processes, fresh output folder (no resumed shards), ``--repeat`` times per word-form
   variant (``VARIANTS``, alternating), each in a fresh Python process (the fork server and its kernel warm-up are paid every time); the
   median run is reported, every run is printed; peak RSS and CPU time are sampled over the
   process tree every 50 ms (under contention from other processes, captions per CPU-second
   says what the cores would give if they were free);
3. the matcher alone in this process over the same parquet batches, after a warm-up count (one
   warm worker's throughput, wall and CPU time; CPU time is what the machine would give without
   other load);
4. the per-caption lemmatise-then-match reference and the spaCy inverted index (paper's
   method) on the first ``--baseline-captions`` captions (they are 100-1000x slower; their
   throughput is measured on that subset and the time for the full corpus is extrapolated,
   labelled as such), plus letitwag's matcher on the same subset for the agreement check;
5. prints throughput, ratios, agreement and memory side by side.

Usage:
    python benchmarks/bench_frequency.py                 # 5,000,000 captions
    python benchmarks/bench_frequency.py --quick         # 200,000 captions, 20,000 for baselines
    python benchmarks/bench_frequency.py --baseline-captions 0   # baselines on every caption
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
from _synthetic_captions import write_corpus

TARGET_CAPTIONS_PER_SECOND = 1_000_000
TARGET_RSS_BYTES = 2 * 1024**3
TARGET_PHRASE_AGREEMENT = 0.999
# the end-to-end variants, as ``count_text`` options: the earlier readings, then the default
VARIANTS = {"--forms lookup": {"forms": "lookup"}, "--concept-words as-written": {"concept_words": "as-written"},
            "default": {}}


class ProcessTreeSampler:
    """Samples this process and all its descendants every 50 ms: peak summed RSS, and CPU time.

    Why sample rather than ``getrusage(RUSAGE_CHILDREN)``: local workers are forked by a fork
    server, so they are not this process's children and their CPU time never reaches its
    rusage. CPU is the sum over processes of the last user+system time seen (a worker's last
    < 50 ms before it exits are missed).
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_rss = 0
        self._cpu: dict[int, float] = {}
        times = psutil.Process().cpu_times()
        self._cpu_before = times.user + times.system  # this process's own CPU before the run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values()) - self._cpu_before

    def _sample(self) -> None:
        me = psutil.Process()
        total = 0
        for process in [me, *me.children(recursive=True)]:
            try:
                with process.oneshot():
                    total += process.memory_info().rss
                    times = process.cpu_times()
                    self._cpu[process.pid] = max(self._cpu.get(process.pid, 0.0), times.user + times.system)
            except psutil.Error:
                pass
        self.peak_rss = max(self.peak_rss, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "ProcessTreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def read_captions(files: list[Path], limit: int | None = None) -> list:
    """The first ``limit`` captions as Python strings (for the per-caption baselines)."""
    captions: list = []
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=["caption"]):
            captions.extend(batch.column(0).to_pylist())
            if limit is not None and len(captions) >= limit:
                return captions[:limit]
    return captions


def run_end_to_end_child(files: list[Path], run_dir: Path, workers: int, shard_rows: int | None,
                         options: dict) -> dict:
    """One end-to-end run, in this (fresh) process: wall and CPU seconds of ``count_text``, peak
    RSS of the process tree (this process, the fork server, the workers) and when the first
    shard's partial was stored (the start-up every run pays: fork server, first shard)."""
    from letitwag.concepts import bundled_concepts
    from letitwag.frequency.count import count_text

    concepts = bundled_concepts("all")
    shutil.rmtree(run_dir, ignore_errors=True)
    with ProcessTreeSampler() as tree:
        start, started_at = time.perf_counter(), time.time()
        count_text([str(path) for path in files], concepts, run_dir, executor="local", workers=workers,
                   shard_rows=shard_rows, **options)
        seconds = time.perf_counter() - start
    first_stored = min(path.stat().st_mtime for path in (run_dir / "shards").glob("*.partial")) - started_at
    return {"seconds": seconds, "cpu_seconds": tree.cpu_seconds, "peak_rss": tree.peak_rss,
            "first_shard_stored_seconds": first_stored}


def run_end_to_end(files: list[Path], run_dir: Path, workers: int, shard_rows: int | None, options: dict) -> dict:
    """``run_end_to_end_child`` in a fresh Python process, as a user's ``letitwag frequency
    count`` would run: nothing imported, loaded or started before (no warm fork server)."""
    command = [sys.executable, __file__, "--e2e-child", json.dumps({"files": [str(f) for f in files],
                                                                    "run_dir": str(run_dir), "workers": workers,
                                                                    "shard_rows": shard_rows, "options": options})]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_matcher_in_process(files: list[Path], matcher) -> tuple[float, float, int, np.ndarray]:
    """One warm worker's view: decode parquet batches and count them here (wall and CPU seconds).

    A warm-up count first loads what a worker loads once per process (the compiled kernel from
    numba's on-disk cache, the Unicode tables); the end-to-end run pays those, this view does not.
    """
    matcher.count(["warm-up dog", "café İstanbul"])
    documents = np.zeros(matcher.n_concepts, dtype=np.int64)
    rows = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=["caption"]):
            documents += matcher.count(batch.column(0), with_hits=False).documents
            rows += batch.num_rows
    return time.perf_counter() - wall, time.process_time() - cpu, rows, documents


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="example: python benchmarks/bench_frequency.py --quick",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=5_000_000, help="corpus size (default 5,000,000)")
    parser.add_argument("--quick", action="store_true", help="200,000 captions and 20,000 for the baselines")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes for the end-to-end run (default 2)")
    parser.add_argument("--baseline-captions", type=int, default=100_000,
                        help="captions given to the slow baselines and the agreement check (0 = all; default 100,000)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--out", type=Path, default=Path("bench-out/frequency"), help="cache and scratch folder")
    parser.add_argument("--shard-rows", type=int, default=None,
                        help="rows per shard of the end-to-end runs (default: letitwag's own default)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="end-to-end runs, each in a fresh process; the median is reported (default 3)")
    parser.add_argument("--json", type=Path, help="also write the measured numbers to this JSON file")
    parser.add_argument("--e2e-child", help=argparse.SUPPRESS)  # internal: one end-to-end run (JSON arguments)
    args = parser.parse_args(argv)
    if args.e2e_child:
        child = json.loads(args.e2e_child)
        print(json.dumps(run_end_to_end_child([Path(f) for f in child["files"]], Path(child["run_dir"]),
                                              child["workers"], child["shard_rows"], child["options"])))
        return 0
    if args.quick:
        args.captions = min(args.captions, 200_000)
        args.baseline_captions = min(args.baseline_captions or args.captions, 20_000)
    baseline_n = args.baseline_captions or args.captions
    baseline_n = min(baseline_n, args.captions)

    from reference_counters import LemmatizeThenMatch, SpacyInvertedIndex

    from letitwag.concepts import bundled_concepts
    from letitwag.frequency.text.matcher import TextMatcher

    concepts = bundled_concepts("all")
    corpus_dir = args.out / f"corpus-{args.captions}-seed{args.seed}"
    print(f"corpus: {args.captions:,} synthetic captions in {corpus_dir} (generated once, then cached)", flush=True)
    start = time.perf_counter()
    files = write_corpus(concepts, corpus_dir, args.captions, seed=args.seed,
                                      rows_per_file=max(1, -(-args.captions // 5)))
    print(f"  ready in {time.perf_counter() - start:.1f} s; {len(files)} files, "
          f"{sum(f.stat().st_size for f in files) / 1e6:.0f} MB parquet", flush=True)
    mean_length = np.mean([len(c) for c in read_captions(files, 100_000) if c])

    print(f"letitwag end to end ({args.workers} local workers), {args.repeat} run(s) per word-form source, "
          "alternating, each in a fresh process...", flush=True)
    by_forms: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.repeat):
        for variant, options in VARIANTS.items():
            by_forms[variant].append(run_end_to_end(files, args.out / "letitwag-run", args.workers, args.shard_rows,
                                                    options))
            seconds = by_forms[variant][-1]["seconds"]
            print(f"  {variant:26s} {seconds:.2f} s: {args.captions / seconds:,.0f} captions/s", flush=True)
    runs = by_forms["default"]  # the last variant, whose table stays in the run folder
    medians = {forms: sorted(found, key=lambda run: run["seconds"])[len(found) // 2] for forms, found in by_forms.items()}
    median = medians["default"]
    e2e_seconds, e2e_cpu = median["seconds"], median["cpu_seconds"]
    e2e_rss = max(run["peak_rss"] for found in by_forms.values() for run in found)
    table = pq.read_table(args.out / "letitwag-run" / "text.parquet")
    build_seconds, matcher = timed(TextMatcher, concepts)
    print("letitwag matcher in this process (one worker)...", flush=True)
    one_wall, one_cpu, rows, one_documents = run_matcher_in_process(files, matcher)
    e2e_documents = table.column("documents").to_numpy()

    print(f"baselines on the first {baseline_n:,} captions...", flush=True)
    subset = read_captions(files, baseline_n)
    fast_phrase = matcher.count(subset)
    fast_bag = TextMatcher(concepts, mode="bag").count(subset)
    reference = LemmatizeThenMatch(concepts)
    ref_seconds, (ref_documents, ref_occurrences) = timed(reference.count_phrase, subset)
    spacy_build, spacy = timed(SpacyInvertedIndex, concepts)
    spacy_seconds, spacy_documents = timed(spacy.count, subset)
    paper_documents = SpacyInvertedIndex(concepts, drop_unknown_words=True).count(subset)

    phrase_equal = np.mean((fast_phrase.documents == ref_documents) & (fast_phrase.occurrences == ref_occurrences))
    bag_equal = bool(np.array_equal(fast_bag.documents, spacy_documents))
    rates = {
        "letitwag end to end": args.captions / e2e_seconds,
        "letitwag end to end, per CPU-second": args.captions / e2e_cpu,
        "letitwag matcher, 1 warm process (wall)": rows / one_wall,
        "letitwag matcher, 1 warm process (CPU time)": rows / one_cpu,
        "lemmatise-then-match reference": baseline_n / ref_seconds,
        "spaCy inverted index (paper's method)": baseline_n / spacy_seconds,
    }
    load = os.getloadavg()
    print()
    print(f"captions: {args.captions:,} (mean {mean_length:.0f} chars), concepts: {len(concepts):,}, "
          f"cores: {os.cpu_count()}, load average now: {load[0]:.1f} (other processes share these cores)")
    print(f"{'method':42s} {'captions':>11s} {'seconds':>9s} {'captions/s':>12s} {'e2e / it':>10s} {'1-proc / it':>12s}")
    measured = {
        "letitwag end to end": (args.captions, e2e_seconds),
        "letitwag end to end, per CPU-second": (args.captions, e2e_cpu),
        "letitwag matcher, 1 warm process (wall)": (rows, one_wall),
        "letitwag matcher, 1 warm process (CPU time)": (rows, one_cpu),
        "lemmatise-then-match reference": (baseline_n, ref_seconds),
        "spaCy inverted index (paper's method)": (baseline_n, spacy_seconds),
    }
    for name, (count, seconds) in measured.items():
        baseline = not name.startswith("letitwag")
        e2e_ratio = f"{rates['letitwag end to end'] / rates[name]:9.1f}x" if baseline else f"{'':10s}"
        one_ratio = f"{rates['letitwag matcher, 1 warm process (wall)'] / rates[name]:11.1f}x" if baseline else ""
        print(f"{name:42s} {count:11,d} {seconds:9.2f} {rates[name]:12,.0f} {e2e_ratio} {one_ratio}")
    print("(ratios: letitwag end to end, and the matcher in one process, against each baseline; wall-clock "
          "rates, all measured under the same load)")
    for name in ("lemmatise-then-match reference", "spaCy inverted index (paper's method)"):
        if baseline_n < args.captions:
            print(f"  {name}: extrapolated to {args.captions:,} captions: "
                  f"{args.captions / rates[name] / 60:.1f} min (measured on {baseline_n:,})")
    print(f"matcher construction for {len(concepts):,} concepts: {build_seconds:.2f} s; "
          f"spaCy baseline construction: {spacy_build:.2f} s")
    print()
    each = {variant: ", ".join(f"{args.captions / run['seconds']:,.0f}" for run in found)
            for variant, found in by_forms.items()}
    for variant in list(VARIANTS)[:-1]:
        before = args.captions / medians[variant]["seconds"]
        print(f"before/after, end to end (medians of {args.repeat} alternating fresh-process runs each): {variant} "
              f"{before:,.0f} captions/s ({each[variant]}), default {rates['letitwag end to end']:,.0f} "
              f"({each['default']}): default / before = {rates['letitwag end to end'] / before:.2f}; per CPU-second "
              f"{args.captions / medians[variant]['cpu_seconds']:,.0f} -> "
              f"{rates['letitwag end to end, per CPU-second']:,.0f}")
    print(f"throughput target >= {TARGET_CAPTIONS_PER_SECOND:,}/s end to end: "
          f"{'MET' if rates['letitwag end to end'] >= TARGET_CAPTIONS_PER_SECOND else 'NOT MET'} "
          f"({rates['letitwag end to end']:,.0f}/s, the median of {len(runs)} fresh-process runs: "
          + ", ".join(f"{args.captions / run['seconds']:,.0f}" for run in runs) + ")")
    print(f"  on an otherwise idle machine: CPU time of the run (parent + workers) {e2e_cpu:.1f} s, i.e. "
          f"{rates['letitwag end to end, per CPU-second']:,.0f} captions per CPU-second; x{args.workers} workers = "
          f"{args.workers * rates['letitwag end to end, per CPU-second']:,.0f}/s if the cores were free (a projection, "
          f"not a measurement)")
    first_stored = sorted(run["first_shard_stored_seconds"] for run in runs)[len(runs) // 2]
    print(f"  the first shard's partial was stored {first_stored:.2f} s into the run (median of the runs: the "
          f"fork server and its preload, then one shard)")
    print(f"  the warm matcher alone (parquet decode + counting, no process start-up): "
          f"{rates['letitwag matcher, 1 warm process (CPU time)']:,.0f} captions per CPU-second; x{args.workers} = "
          f"{args.workers * rates['letitwag matcher, 1 warm process (CPU time)']:,.0f}/s (a projection)")
    print(f"peak RSS of the end-to-end run incl. workers: {e2e_rss / 1e6:,.0f} MB "
          f"(target < {TARGET_RSS_BYTES / 1e6:,.0f} MB: {'MET' if e2e_rss < TARGET_RSS_BYTES else 'NOT MET'})")
    print(f"phrase agreement with lemmatise-then-match on {baseline_n:,} captions: "
          f"{phrase_equal:.4%} of concepts have equal documents and occurrences "
          f"(target >= {TARGET_PHRASE_AGREEMENT:.1%}: {'MET' if phrase_equal >= TARGET_PHRASE_AGREEMENT else 'NOT MET'})")
    print(f"bag counts equal the spaCy inverted index on {baseline_n:,} captions: {bag_equal} "
          f"({int(np.sum(fast_bag.documents != spacy_documents))} concepts differ)")
    print(f"  for reference, the paper's dropping of unknown concept words would change "
          f"{int(np.sum(paper_documents != spacy_documents))} concepts' bag counts on this subset")
    print(f"end-to-end table equals the in-process matcher's counts: {bool(np.array_equal(e2e_documents, one_documents))}")
    if args.json:
        args.json.write_text(json.dumps({
            "captions": args.captions, "baseline_captions": baseline_n, "rates": rates, "end_to_end_runs": by_forms,
            "peak_rss_bytes": e2e_rss, "phrase_agreement": phrase_equal, "bag_equal": bag_equal,
            "load_average": load,
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
