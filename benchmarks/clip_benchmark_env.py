"""CLIP_benchmark in its own virtual environment, and a way to run it on a job (stdlib only).

Why its own venv: ``clip-benchmark`` 1.6.2's zero-shot metric fails with numpy >= 2.4, which
letitwag's environment uses; the peer therefore runs as a subprocess in a venv with
``numpy<2.4`` and the same torch / torchvision / open_clip versions as letitwag. Where no venv
can be made (the GPU machine has no network), ``run(job, python=...)`` runs the same script with
a given interpreter, and the runner works around that one numpy call itself.

    python3 benchmarks/clip_benchmark_env.py                 # create bench-out/clip_benchmark_venv
    python3 benchmarks/clip_benchmark_env.py --venv DIR      # elsewhere

Creating it takes minutes (pip resolves and unpacks torch), so ``make test`` does it once
before the suite; the peer test fails with this command when the venv is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO / "bench-out" / "clip_benchmark_venv"
# requests: clip-benchmark 1.6.2's dataset builder imports it (for ImageNetV2 downloads) without
# declaring it, so `clip_benchmark eval` (and its webdataset loading) fails without it.
PACKAGES = ("clip-benchmark==1.6.2", "numpy<2.4", "torch==2.14.1", "torchvision==0.29.1", "open_clip_torch==3.3.0",
            "requests==2.34.2")
STAMP = ".letitwag-installed"
RUNNER = Path(__file__).resolve().parent / "_clip_benchmark_runner.py"
CREATE_COMMAND = "python3 benchmarks/clip_benchmark_env.py"


def venv_python(venv: Path) -> Path:
    return Path(venv) / "bin" / "python"


def is_ready(venv: Path = DEFAULT_VENV) -> bool:
    """True once the venv was created and every package installed (the stamp is written last)."""
    stamp = Path(venv) / STAMP
    return stamp.is_file() and stamp.read_text().strip() == "\n".join(PACKAGES) and venv_python(venv).exists()


def create(venv: Path = DEFAULT_VENV) -> Path:
    """Create (or complete) the venv; idempotent, so an interrupted creation is simply rerun."""
    venv = Path(venv)
    if is_ready(venv):
        return venv
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "--quiet", *PACKAGES], check=True)
    (venv / STAMP).write_text("\n".join(PACKAGES) + "\n")
    return venv


def run(job: dict, venv: Path = DEFAULT_VENV, timeout: float | None = None, python: str | None = None) -> dict:
    """Run ``_clip_benchmark_runner.py`` on ``job`` inside the venv; returns its JSON report.

    ``python``: run it with this interpreter and the current environment instead (where
    clip-benchmark is importable beside letitwag, as on the GPU machine: its numpy >= 2.4 is
    handled by the runner's ``_numpy_compat``)."""
    if python is None and not is_ready(venv):
        raise RuntimeError(f"CLIP_benchmark venv missing or incomplete at {venv}; create it with: {CREATE_COMMAND}")
    with tempfile.TemporaryDirectory(prefix="clip_benchmark_job_") as folder:
        job_path, out_path = Path(folder) / "job.json", Path(folder) / "report.json"
        job_path.write_text(json.dumps(job))
        if python is None:
            python = str(venv_python(venv))
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        else:
            env = dict(os.environ)
        completed = subprocess.run(
            [python, str(RUNNER), str(job_path), str(out_path)],
            env=env, capture_output=True, text=True, timeout=timeout,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"CLIP_benchmark run failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
        return json.loads(out_path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"where to create it (default: {DEFAULT_VENV})")
    args = parser.parse_args()
    print(f"CLIP_benchmark venv ready at {create(args.venv)}")


if __name__ == "__main__":
    main()
