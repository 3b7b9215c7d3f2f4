"""kill -9 during curation, rerun: it resumes from finished chunks and gives the same bytes."""

import os
import signal
import subprocess
import sys
import time


def _command(candidates, out):
    return [sys.executable, "-m", "letitwag", "curate", str(candidates), "--out", str(out), "--per-class", "20",
            "--workers", "1", "--chunk-size", "3"]


def test_sigkill_then_rerun_resumes_and_matches_a_clean_run(tmp_path, image_tools):
    candidates = tmp_path / "candidates"
    candidates.mkdir()
    rows = [{"candidate_id": f"c{i % 3}/{i:04d}", "concept_id": f"c{i % 3}",
             "data": image_tools.encode(image_tools.smooth_image(i, (256, 192)))} for i in range(240)]
    image_tools.build_candidates(candidates, rows)
    out = tmp_path / "killed"
    process = subprocess.Popen(_command(candidates, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("_work/validate-*/chunk-000002.parquet")):
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(out.glob("_work/validate-*/chunk-*.parquet"))
    assert 3 <= len(finished) < 80, "the kill must land mid-run"
    assert not (out / "curated.parquet").exists()
    stamps = {path: path.stat().st_mtime_ns for path in finished}

    rerun = subprocess.run(_command(candidates, out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed" in rerun.stderr
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())  # finished work not redone

    clean = tmp_path / "clean"
    assert subprocess.run(_command(candidates, clean), capture_output=True, timeout=300).returncode == 0
    for name in ("curated.parquet", "report.json", "report.md"):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
