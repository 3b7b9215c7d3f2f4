"""Is ``.whl/`` complete? Run the GPU benchmark here as if only the GPU machine's packages existed.

The wheels are installed into a scratch ``--target`` folder exactly as ``run_gpu_bench.sh`` does,
and ``gpu_bench.py --quick --device cpu`` runs with an import guard in every Python process it
starts (a ``sitecustomize`` module: the DataLoader workers and the CLIP_benchmark subprocess
too). The guard lets a top-level module load only if it belongs to the standard library, to no
installed distribution but letitwag (both read from the checkout there), to a
wheel in ``.whl/``, or to a distribution in ``device_packages.txt`` (the GPU image's package
list); anything else fails as it would there, and is listed. Versions stay this machine's
(torch, numpy, transformers differ there): the check is for presence, not for API changes,
except numpy >= 2.4, which both machines have, so CLIP_benchmark's numpy workaround runs here.
Packages the GPU machine has and this environment lacks are installed beside the wheels
(``STAND_INS``).

    bash benchmarks/device/prepare_wheels.sh && python benchmarks/device/check_wheels.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# On the GPU machine, absent from letitwag's environment here: installed into the scratch folder
# beside the wheels (from the package index) so that what imports them can run.
STAND_INS = ("scikit-learn==1.9.1", "joblib==1.6.0", "cloudpickle==3.1.3", "narwhals==2.29.0")

GUARD = '''
import importlib.abc, importlib.metadata, json, os, re, sys

_ALLOWED = set(json.loads(os.environ["LETITWAG_DEVICE_DISTRIBUTIONS"]))
_BLOCKED_LOG = os.environ["LETITWAG_BLOCKED_LOG"]


def _normal(name):
    return re.sub(r"[-_.]+", "-", name).lower()


class _DeviceGuard(importlib.abc.MetaPathFinder):
    owners = None

    def find_spec(self, name, path=None, target=None):
        if "." in name or name in sys.stdlib_module_names or name in sys.builtin_module_names:
            return None
        if self.owners is None:
            self.owners = importlib.metadata.packages_distributions()
        dists = self.owners.get(name)
        if not dists or any(_normal(d) in _ALLOWED for d in dists):
            return None
        with open(_BLOCKED_LOG, "a") as log:
            log.write(f"{name} {','.join(sorted(set(dists)))}\\n")
        raise ModuleNotFoundError(f"No module named {name!r} (its distribution {dists} is not on the GPU machine)")


sys.meta_path.insert(0, _DeviceGuard())
'''


def normal(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_distribution(path: Path) -> str:
    return normal(path.name.split("-")[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", type=Path, default=REPO / ".whl")
    parser.add_argument("--packages", type=Path, default=HERE / "device_packages.txt")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "letitwag-check-wheels")
    args = parser.parse_args()
    wheels = sorted(args.wheels.glob("*.whl"))
    if not wheels:
        print(f"no wheels in {args.wheels}: run benchmarks/device/prepare_wheels.sh first")
        return 2
    names = [wheel_distribution(path) for path in wheels]
    if len(set(names)) != len(names):
        print(f"two versions of one package in {args.wheels}: {sorted(names)}")
        return 2
    device = {normal(line.strip()) for line in args.packages.read_text().splitlines() if line.strip()}
    with tempfile.TemporaryDirectory(prefix="letitwag-device-") as scratch:
        site, guard = Path(scratch) / "site", Path(scratch) / "guard"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(site), *map(str, wheels)], check=True)
        stand_ins = Path(scratch) / "stand-ins"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(stand_ins),
                        *STAND_INS], check=True)
        guard.mkdir()
        (guard / "sitecustomize.py").write_text(GUARD)
        blocked = Path(scratch) / "blocked.txt"
        blocked.touch()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(guard), str(site), str(REPO), str(stand_ins)]),
               "LETITWAG_DEVICE_DISTRIBUTIONS": json.dumps(sorted(device | set(names) | {"letitwag"})),
               "LETITWAG_BLOCKED_LOG": str(blocked)}
        command = [sys.executable, str(REPO / "benchmarks" / "gpu_bench.py"), "--quick", "--device", "cpu",
                   "--out", str(args.out), "--peer-python", sys.executable]
        completed = subprocess.run(command, env=env, cwd=REPO)
        missing = sorted(set(blocked.read_text().splitlines()))
    report = json.loads((args.out / "gpu_bench.json").read_text()) if (args.out / "gpu_bench.json").is_file() else {}
    errors = report.get("errors", {})
    print(f"wheels: {', '.join(names)}")
    print("imports refused (absent on the GPU machine; optional ones are expected):", *missing or ["none"], sep="\n  ")
    print(f"benchmark steps failed: {json.dumps(errors) if errors else 'none'}; exit {completed.returncode}")
    peer = report.get("steps", {}).get("clip_benchmark_default", {})
    print(f"CLIP_benchmark ran with numpy workaround: {peer.get('numpy_compat_patch')} ({peer.get('versions')})")
    return 0 if completed.returncode == 0 and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
