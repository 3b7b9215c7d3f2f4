"""Time ``letitwag analyze --paper`` against its budget of 60 seconds.

Runs the whole command (all 156 fits with 1,000 bootstrap resamples each, the corpus-level
analyses, every figure as PNG + SVG and the report) in a fresh process, so imports count,
and prints wall time, CPU time and the ratio to the budget. ``--quick`` skips the figures
and uses 100 resamples, to check the script itself in a few seconds.

    python benchmarks/bench_analyze.py            # the claim: under 60 s
    python benchmarks/bench_analyze.py --quick
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

BUDGET_SECONDS = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="no figures, 100 bootstrap resamples")
    parser.add_argument("--out", help="report folder (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or os.path.join(scratch, "report")
        command = [sys.executable, "-m", "letitwag", "--log-level", "WARNING", "analyze", "--paper", "--out", out]
        if args.quick:
            command += ["--no-figures", "--bootstrap", "100"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if completed.returncode != 0:
            print(completed.stderr, file=sys.stderr)
            return completed.returncode
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load = os.getloadavg()[0]
    mode = "quick (no figures, 100 resamples)" if args.quick else "full"
    print(f"letitwag analyze --paper [{mode}]: {completed.stdout.strip()}")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s, budget {BUDGET_SECONDS:.0f} s -> wall/budget {wall / BUDGET_SECONDS:.2f}, "
          f"CPU/budget {cpu / BUDGET_SECONDS:.2f} (1-min load average {load:.1f} on {os.cpu_count()} CPUs)")
    if not args.quick and wall > BUDGET_SECONDS:
        print("over budget on the wall clock" + (" (the machine is loaded; see CPU time)" if load > (os.cpu_count() or 1)
                                                 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
