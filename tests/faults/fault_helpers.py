"""Helpers and fixtures of the fault suite: inputs for the three long stages, a SIGKILL driver, a tiny tmpfs.

A module of its own (not ``conftest``), so that test modules import it by a name no other test
area uses: ``from conftest import`` finds whichever area's conftest was imported last.

Why one driver for every kill test: the waits must be bounded and the processes must never
outlive a test, whatever fails. ``kill_when`` starts a command in its own session, polls a
condition on the files it writes, SIGKILLs the whole process group as soon as the condition
holds (or the deadline passes) and always reaps it.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

HERE = Path(__file__).parent
TESTS = HERE.parent
SEED = 20261125  # every kill point of the suite is drawn from this seed
CONCEPT_IDS = ["dog", "hot_dog", "cat", "golden_retriever", "zebra"]
_WORDS = ("dog dogs cat cats hot dog golden retriever zebra zebras a the on beach with of and playing near red "
          "blue Dog's CATS hot-dog").split()


def kill_points(label: str, ranges: Sequence[tuple[int, int]]) -> list[int]:
    """One seeded integer per ``(low, high)`` range: where a stage gets killed (reproducible per label)."""
    rng = random.Random(f"{SEED}:{label}")
    return [rng.randint(low, high) for low, high in ranges]


def early_delay(label: str) -> float:
    """A seeded delay (seconds) for the 'very early' kill, while the process is still starting."""
    return random.Random(f"{SEED}:{label}:early").uniform(0.05, 0.4)


def mtimes(paths: Iterator[Path]) -> dict[str, int]:
    """``{name: mtime_ns}``: a finished record rewritten by a rerun changes its mtime."""
    return {str(path): path.stat().st_mtime_ns for path in paths}


def kill_when(command: list[str], ready: Callable[[], bool], *, env: dict | None = None, timeout: float = 240) -> str:
    """Run ``command``; SIGKILL its process group once ``ready()`` holds. Returns how it ended.

    ``"killed"``: killed while running, as wanted; ``"finished"``: it exited on its own before the
    condition held (the caller treats this as a failed kill point); a timeout fails the test.
    """
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if ready():
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
                return "killed"
            if time.monotonic() > deadline:
                pytest.fail(f"{command[:4]}: the kill condition did not hold within {timeout} s")
            time.sleep(0.002)
        stderr = process.stderr.read().decode(errors="replace")[-2000:]
        assert process.returncode == 0, f"the run failed before it could be killed:\n{stderr}"
        return "finished"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # pool workers or a hung driver never outlive the test
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        process.stderr.close()


def after(seconds: float) -> Callable[[], bool]:
    """A kill condition that holds ``seconds`` after it is created (the 'very early' kill)."""
    start = time.monotonic()
    return lambda: time.monotonic() - start >= seconds


def letitwag_command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "letitwag", *argv]


def run_cli(*argv: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(letitwag_command(*argv), capture_output=True, text=True, env=env, timeout=timeout)


def one_line_error(stderr: str, command: str) -> str:
    """The CLI's error line; asserts it is the only one and no traceback was printed."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith(f"letitwag {command}: error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fail_on_call(number: int, real: Callable) -> Callable:
    """``real`` that raises ENOSPC on its ``number``-th call (1-based) and every call after it."""
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= number:
            enospc()
        return real(*args, **kwargs)

    return wrapper


def files_below(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes): compares whole output trees."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- frequency counting ------------------------------------------------------------------------

FREQUENCY_SHARD_ROWS = 3000


@pytest.fixture(scope="session")
def caption_corpus(tmp_path_factory) -> dict:
    """30 shards of seeded captions over three formats (parquet 12, JSONL 9, CSV 9) and a concept file."""
    root = tmp_path_factory.mktemp("captions")
    rng = random.Random(SEED)

    def captions(n: int) -> list[str]:
        return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 16))) for _ in range(n)]

    rows = FREQUENCY_SHARD_ROWS
    parquet = root / "a.parquet"
    pq.write_table(pa.table({"id": [f"a{i}" for i in range(12 * rows)], "caption": captions(12 * rows)}), parquet,
                   row_group_size=500)
    jsonl = root / "b.jsonl"
    jsonl.write_text("".join(json.dumps({"id": f"b{i}", "caption": c}) + "\n"
                             for i, c in enumerate(captions(9 * rows))), encoding="utf-8")
    csv_file = root / "c.csv"
    csv_file.write_text("id,caption\n" + "".join(f'c{i},"{c}"\n' for i, c in enumerate(captions(9 * rows))),
                        encoding="utf-8")
    concepts = root / "concepts.txt"
    concepts.write_text("\n".join(CONCEPT_IDS) + "\n", encoding="utf-8")
    return {"captions": [str(parquet), str(jsonl), str(csv_file)], "concepts": str(concepts), "shards": 30}


def count_argv(corpus: dict, out: Path, workers: int = 1) -> list[str]:
    return ["frequency", "count", "--captions", *corpus["captions"], "--concepts", corpus["concepts"], "--out",
            str(out), "--shard-rows", str(FREQUENCY_SHARD_ROWS), "--workers", str(workers), "--postings"]


FREQUENCY_OUTPUTS = ("text.parquet", "text_postings.parquet")


@pytest.fixture(scope="session")
def uninterrupted_counts(caption_corpus, tmp_path_factory) -> dict[str, bytes]:
    """The outputs of one uninterrupted ``letitwag frequency count`` (a separate process)."""
    out = tmp_path_factory.mktemp("counts") / "clean"
    result = run_cli(*count_argv(caption_corpus, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: (out / name).read_bytes() for name in FREQUENCY_OUTPUTS}


# --- curation ----------------------------------------------------------------------------------

CURATE_IMAGES = 150
CURATE_CHUNK = 3


def _image_bytes(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    coarse.resize((160, 120), Image.BICUBIC).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def candidates_dir(tmp_path_factory) -> Path:
    """A candidate manifest of 150 images in 3 concepts: files, inline bytes (written out by validation),
    exact duplicates and a few broken files, so every validation path writes something."""
    from letitwag.builders.manifest import IMAGE_TYPE, write_candidates

    directory = tmp_path_factory.mktemp("candidates")
    (directory / "images").mkdir()
    ids, concepts, images = [], [], []
    for index in range(CURATE_IMAGES):
        data = _image_bytes(index if index % 25 else 1)  # every 25th image duplicates image 1
        if index % 37 == 36:
            data = data[: len(data) // 3]  # truncated: rejected by validation
        candidate = f"c{index % 3}/{index:04d}"
        if index % 4 == 0:
            images.append({"bytes": data, "path": None})
        else:
            name = f"images/{index:04d}.jpg"
            (directory / name).write_bytes(data)
            images.append({"bytes": None, "path": name})
        ids.append(candidate)
        concepts.append(f"c{index % 3}")
    table = pa.table({"candidate_id": ids, "concept_id": concepts, "image": pa.array(images, IMAGE_TYPE),
                      "source": ["folder"] * len(ids), "url": [None] * len(ids), "license": ["cc0"] * len(ids)})
    write_candidates(directory, table, {"source": "fault-suite fixture"})
    return directory


def curate_argv(candidates: Path, out: Path) -> list[str]:
    return ["curate", str(candidates), "--out", str(out), "--per-class", "30", "--workers", "1", "--chunk-size",
            str(CURATE_CHUNK), "--keep-short-classes"]


@pytest.fixture(scope="session")
def uninterrupted_curation(candidates_dir, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("curated") / "clean"
    result = run_cli(*curate_argv(candidates_dir, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return curated_outputs(out)


def curated_outputs(out: Path) -> dict[str, bytes]:
    """The curated manifest, its reports and the images it wrote (not the resume records, not the
    temporary files a killed atomic write leaves: see ``leftover_temporaries``)."""
    return {name: data for name, data in files_below(out).items()
            if not name.startswith("_work") and not is_temporary(Path(name))}


def is_temporary(path: Path) -> bool:
    """The name ``letitwag.io.atomic_path`` gives a file before it is complete."""
    return path.name.startswith(".") and path.suffix == ".tmp"


def leftover_temporaries(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*.tmp"))


def validation_chunks(out: Path) -> list[Path]:
    return sorted(out.glob("_work/validate-*/chunk-*.parquet"))


# --- evaluation --------------------------------------------------------------------------------

EVAL_SAMPLES = 48
EVAL_CHUNK = 2


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """A tiny RANDOM-WEIGHT open_clip (plumbing only) from ``letitwag.models.tiny``."""
    from letitwag.models.tiny import build_tiny_open_clip

    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny") / "open_clip")


@pytest.fixture(scope="session")
def eval_dataset(tmp_path_factory) -> Path:
    """48 coloured PNGs in 3 classes in HF Hub layout (two parquet shards under data/)."""
    import datasets
    from PIL import Image

    images, labels = [], []
    for index in range(EVAL_SAMPLES):
        label = index % 3
        buffer = io.BytesIO()
        Image.new("RGB", (20 + index % 7, 18 + label), (40 + 70 * label, (37 * index) % 255, 200 - 60 * label)
                  ).save(buffer, "PNG")
        images.append({"bytes": buffer.getvalue(), "path": None})
        labels.append(label)
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["Harriss_Hawk", "A300B4", "zebra"])})
    dataset = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    folder = tmp_path_factory.mktemp("eval") / "hub"
    (folder / "data").mkdir(parents=True)
    for shard in range(2):
        part = dataset.shard(num_shards=2, index=shard, contiguous=True)
        part.to_parquet(str(folder / "data" / f"test-{shard:05d}-of-00002.parquet"))
    return folder


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """In-process torch work on a shared 2-core machine: one intra-op thread avoids spin-wait slowdowns."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def eval_argv(model: str, dataset: Path, out: Path, cache: Path | None) -> list[str]:
    argv = ["evaluate", "--model", model, "--dataset", str(dataset), "--out", str(out), "--workers", "0",
            "--batch-size", "2", "--chunk-size", str(EVAL_CHUNK), "--bootstrap-samples", "20", "--prompts", "simple"]
    return argv + (["--cache-dir", str(cache)] if cache else ["--no-cache"])


def eval_env(spec: str, delay: float) -> dict:
    """Environment for ``python:fault_models:throttled`` (the tiny model, ``delay`` s per image batch)."""
    return dict(os.environ, LETITWAG_FAULT_SPEC=spec, LETITWAG_FAULT_DELAY=str(delay), OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))


def feature_chunks(cache: Path) -> list[Path]:
    return sorted(cache.glob("features/*/chunk-*.npz"))


def run_outputs(out: Path) -> tuple[bytes, dict]:
    """``predictions.parquet`` bytes and the metrics of ``results.json`` (the rest holds times and paths)."""
    results = json.loads((out / "results.json").read_text())
    return (out / "predictions.parquet").read_bytes(), results["metrics"]


# --- leaderboard -------------------------------------------------------------------------------

def load_test_helpers(area: str, name: str):
    """Another test area's helper module, loaded under a private name (it is not on sys.path here)."""
    spec = importlib.util.spec_from_file_location(name, TESTS / area / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- disk full ---------------------------------------------------------------------------------

class TinyTmpfs:
    """A real tmpfs of a few KiB at ``path``; ``grow`` remounts it bigger keeping its files."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def grow(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True)


@pytest.fixture
def tiny_tmpfs(tmp_path) -> Iterator[Callable[[str], TinyTmpfs]]:
    """``mount(size)`` mounts a tmpfs of that size; skipped with the reason when mounting is not permitted
    (each tmpfs test has an in-process ENOSPC-injection twin that always runs)."""
    mounted: list[Path] = []

    def mount(size: str) -> TinyTmpfs:
        path = tmp_path / f"tmpfs{len(mounted)}"
        path.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode}); "
                        "the ENOSPC-injection twin covers disk full")
        mounted.append(path)
        return TinyTmpfs(path)

    try:
        yield mount
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
