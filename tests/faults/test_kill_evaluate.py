"""``python -m letitwag.evaluate`` killed with SIGKILL at several seeded points during feature extraction.

The model is the tiny RANDOM-WEIGHT open_clip of ``letitwag.models.tiny`` (plumbing only), behind
``python:fault_models:throttled`` so that chunks take long enough for a kill to land between them.
Proves: a killed run writes no results; each rerun reuses the feature chunks already cached (not
rewritten) and computes only the rest; predictions.parquet and the metrics equal an uninterrupted
uncached run's, and that of the tiny open_clip loaded directly.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow.parquet as pq

from fault_helpers import (EVAL_CHUNK, EVAL_SAMPLES, HERE, after, early_delay, eval_argv, eval_env, feature_chunks,
                      kill_points, kill_when, mtimes, run_outputs)
from letitwag.cli import main

MODEL = "python:fault_models:throttled"


def test_sigkill_during_feature_extraction_then_resume_is_identical(tiny_clip, eval_dataset, tmp_path, monkeypatch,
                                                                   one_torch_thread):
    out, cache = tmp_path / "killed", tmp_path / "cache"
    total = EVAL_SAMPLES // EVAL_CHUNK
    command = [sys.executable, "-m", "letitwag.evaluate", *eval_argv(MODEL, eval_dataset, out, cache)[1:]]
    env = eval_env(tiny_clip, delay=0.15)
    targets = kill_points("evaluate", [(1, 3), (8, 14)])
    plan = [after(early_delay("evaluate"))] + [lambda target=target: len(feature_chunks(cache)) >= target
                                                 for target in targets]
    before: dict[str, int] = {}
    for ready in plan:
        assert kill_when(command, ready, env=env) == "killed", "the run finished before its kill point"
        now = mtimes(iter(feature_chunks(cache)))
        assert {name: now[name] for name in before} == before, "a finished feature chunk was rewritten"
        assert not (out / "results.json").exists() and not (out / "predictions.parquet").exists()
        before = now
    assert targets[-1] <= len(before) < total

    # The rerun and the references run in this process (no second torch import); no delay needed now.
    monkeypatch.syspath_prepend(str(HERE))
    for name, value in eval_env(tiny_clip, delay=0).items():
        monkeypatch.setenv(name, value)
    assert main(eval_argv(MODEL, eval_dataset, out, cache)) == 0
    features = json.loads((out / "results.json").read_text())["cache"]["image_features"]
    assert (features["chunks_reused"], features["chunks_computed"]) == (len(before), total - len(before))
    now = mtimes(iter(feature_chunks(cache)))
    assert len(now) == total and {name: now[name] for name in before} == before

    assert main(eval_argv(MODEL, eval_dataset, tmp_path / "fresh", None)) == 0
    assert run_outputs(out) == run_outputs(tmp_path / "fresh")
    # loaded directly, open_clip's tower takes the class-token shortcut: the same top-5 and
    # metrics, scores equal up to float rounding
    assert main(eval_argv(tiny_clip, eval_dataset, tmp_path / "direct", None)) == 0
    resumed, direct = (pq.read_table(folder / "predictions.parquet").to_pydict() for folder in (out, tmp_path / "direct"))
    assert {k: v for k, v in resumed.items() if k != "topk_scores"} == {k: v for k, v in direct.items() if k != "topk_scores"}
    np.testing.assert_allclose(resumed["topk_scores"], direct["topk_scores"], rtol=1e-5, atol=1e-5)
    assert run_outputs(out)[1] == run_outputs(tmp_path / "direct")[1]
