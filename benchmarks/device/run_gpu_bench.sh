#!/usr/bin/env bash
# benchmarks/gpu_bench.py on the GPU machine, in one call (see docs/performance.md, "GPU").
#
# Installs the wheels carried in .whl/ (benchmarks/device/prepare_wheels.sh), then runs the
# benchmark with a time budget: it stops starting new steps after BUDGET_S seconds (default 300;
# the machine's start and this install come on top). Figures and logs go to $OUT (the device
# tool's output folder; bench-out/gpu-device elsewhere): gpu_bench.json, gpu_bench.md, log.txt,
# environment.txt. The dataset (~11 GB) and the runs stay in /tmp. Extra arguments go to
# gpu_bench.py (e.g. --also-large, --compile-probe).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench-out/gpu-device}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing the carried wheels failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
{
    nvidia-smi
    nproc
    python3 -c "import sys, torch, torchvision, numpy; print(sys.version); print(torch.__version__, torchvision.__version__, numpy.__version__, torch.cuda.get_device_name(0))"
    python3 -m pip list 2>/dev/null | grep -i -E "^(torch|torchvision|numpy|pillow|transformers|timm|scikit-learn|open.clip|clip.benchmark|webdataset) "
} > "$OUT/environment.txt" 2>&1
python3 benchmarks/gpu_bench.py --out "$OUT" --work /tmp/gpu-bench-work --budget-s "${BUDGET_S:-300}" "$@" 2>&1 \
    | tr '\r' '\n' | grep --line-buffered -v -E "^\s*(image features|class prompts|[0-9]+%).*(it/s|img/s|s/it|s/img)" \
    | tee "$OUT/log.txt"
