#!/usr/bin/env bash
# Download, here, the wheels the GPU machine lacks for benchmarks/gpu_bench.py, into .whl/ (git-ignored).
#
# The GPU machine (Python 3.12, x86-64, torch 2.11 + torchvision 0.26, numpy, pyarrow, pandas,
# transformers, timm, scikit-learn, ... and no network) lacks open_clip and CLIP_benchmark and
# their small pure-Python needs. benchmarks/device/check_wheels.py proves the set is complete.
# One version of each, no dependencies resolved (--no-deps): the list below is the whole set.
#
#   bash benchmarks/device/prepare_wheels.sh            # then: python benchmarks/device/check_wheels.py
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
WHEELS=(
    open_clip_torch==3.3.0   # the models (letitwag's open_clip adapter and CLIP_benchmark's loader)
    ftfy==6.3.1              # open_clip's tokenizer cleans text with it
    wcwidth==0.9.4           # ftfy's one dependency
    clip-benchmark==1.6.2    # the peer
    webdataset==1.0.2        # CLIP_benchmark reads the wds folders with it
    braceexpand==0.1.7       # webdataset's shard-list patterns
)
mkdir -p .whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
ls -l .whl
du -sh .whl
