"""``python -m letitwag.evaluate --task retrieval`` killed with SIGKILL while it encodes captions, then images.

The model is the tiny RANDOM-WEIGHT open_clip of ``letitwag.models.tiny`` (plumbing only) behind
``python:fault_models:throttled`` (slowed per text and image batch, so a kill lands between chunks).
Proves: a killed run writes no results; the rerun reuses every caption and image chunk already cached
(never rewritten) and computes only the rest; its predictions.parquet and metrics equal an
uninterrupted uncached run's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fault_helpers import HERE, TESTS, eval_env, kill_points, kill_when, mtimes, run_outputs
from letitwag.cli import main

MODEL = "python:fault_models:throttled"
IMAGES, CAPTIONS_PER_IMAGE, CHUNK = 16, 3, 4


@pytest.fixture(scope="module")
def caption_dataset(tmp_path_factory) -> Path:
    sys.path.insert(0, str(TESTS.parent / "benchmarks"))
    from peer_clip_benchmark import write_wds_retrieval

    return Path(write_wds_retrieval(tmp_path_factory.mktemp("wds") / "captions", images=IMAGES,
                                    captions_per_image=CAPTIONS_PER_IMAGE, seed=9, size=(36, 32), shards=2)["root"])


def _argv(dataset: Path, out: Path, cache: Path | None) -> list[str]:
    argv = ["evaluate", "--task", "retrieval", "--model", MODEL, "--dataset", str(dataset), "--out", str(out),
            "--workers", "0", "--batch-size", "2", "--chunk-size", str(CHUNK), "--bootstrap-samples", "20",
            "--concepts", "coco", "--min-concept-images", "2"]
    return argv + (["--cache-dir", str(cache)] if cache else ["--no-cache"])


def _chunks(cache: Path, captions: bool) -> list[Path]:
    """Feature chunks of the caption store (its manifest's dataset key starts with ``captions:``) or the image store."""
    found = []
    for manifest in cache.glob("features/*/manifest.json"):
        if json.loads(manifest.read_text())["dataset_key"].startswith("captions:") == captions:
            found.extend(manifest.parent.glob("chunk-*.npz"))
    return sorted(found)


def test_sigkill_while_encoding_captions_then_images_resumes_identically(tiny_clip, caption_dataset, tmp_path,
                                                                         monkeypatch, one_torch_thread):
    out, cache = tmp_path / "killed", tmp_path / "cache"
    caption_chunks, image_chunks = IMAGES * CAPTIONS_PER_IMAGE // CHUNK, IMAGES // CHUNK
    command = [sys.executable, "-m", "letitwag.evaluate", *_argv(caption_dataset, out, cache)[1:]]
    env = {**eval_env(tiny_clip, delay=0.3), "LETITWAG_FAULT_TEXT_DELAY": "0.1"}
    in_captions, in_images = kill_points("retrieval", [(2, caption_chunks - 3), (1, image_chunks - 2)])
    plan = [lambda: len(_chunks(cache, captions=True)) >= in_captions,
            lambda: len(_chunks(cache, captions=False)) >= in_images]
    before: dict[str, int] = {}
    for ready in plan:
        assert kill_when(command, ready, env=env) == "killed", "the run finished before its kill point"
        now = mtimes(iter(_chunks(cache, True) + _chunks(cache, False)))
        assert {name: now[name] for name in before} == before, "a finished feature chunk was rewritten"
        assert not (out / "results.json").exists() and not (out / "predictions.parquet").exists()
        before = now
    assert len(_chunks(cache, True)) == caption_chunks and in_images <= len(_chunks(cache, False)) < image_chunks
    images_done = len(_chunks(cache, False))

    monkeypatch.syspath_prepend(str(HERE))
    for name, value in eval_env(tiny_clip, delay=0).items():
        monkeypatch.setenv(name, value)
    assert main(_argv(caption_dataset, out, cache)) == 0
    reused = json.loads((out / "results.json").read_text())["cache"]
    assert (reused["caption_features"]["chunks_reused"], reused["caption_features"]["chunks_computed"]) == (caption_chunks, 0)
    assert (reused["image_features"]["chunks_reused"], reused["image_features"]["chunks_computed"]) == (
        images_done, image_chunks - images_done)
    now = mtimes(iter(_chunks(cache, True) + _chunks(cache, False)))
    assert {name: now[name] for name in before} == before

    assert main(_argv(caption_dataset, tmp_path / "fresh", None)) == 0
    assert run_outputs(out) == run_outputs(tmp_path / "fresh")
