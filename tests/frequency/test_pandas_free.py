"""Counting a parquet shard in ``phrase`` mode never imports pandas (see ``letitwag.arrow_buffers``).

Why a test: pyarrow imports pandas (~0.3 s) on the first ``pa.array``/``pa.scalar``/``to_numpy``
of a process, and the counting workers' fork server would then have to pay it before the first
shard of every run. One stray call in the counting path brings that back unnoticed, so a fresh
interpreter does what a worker does (the fork server's preload, then one shard with nulls,
blanks, non-ASCII rows and rows only ``normalize_text`` settles) and reports what it imported.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.builders.captions import plan_caption_slices
from letitwag.builders.frequency import _WORKER_PRELOAD, TextCountTask, _decode_counts
from letitwag.builders.textmatch import TextMatcher
from letitwag.concepts import Concept, ConceptList

CAPTIONS = ["a dog on the beach", None, "", "   ", "café dogs", "İstanbul hot dog", "ΣΟΦΙΑ's dog", "two DOGS"]

_WORKER = """
import importlib, pickle, sys
for module in {preload!r}:
    importlib.import_module(module)
with open(sys.argv[1], "rb") as handle:
    task, piece = pickle.load(handle)
sys.stdout.buffer.write(task(piece))
sys.stderr.write("pandas imported" if "pandas" in sys.modules else "pandas not imported")
"""


def test_a_phrase_worker_counts_a_parquet_shard_without_importing_pandas(tmp_path):
    path = tmp_path / "captions.parquet"
    pq.write_table(pa.table({"caption": pa.array(CAPTIONS, pa.string())}), path)
    concepts = ConceptList([Concept("dog"), Concept("hot_dog"), Concept("café")])
    [piece] = plan_caption_slices([str(path)])
    task_file = tmp_path / "task.pkl"
    task_file.write_bytes(pickle.dumps((TextCountTask(TextMatcher(concepts), postings=False), piece)))
    done = subprocess.run([sys.executable, "-c", _WORKER.format(preload=_WORKER_PRELOAD["phrase"]), str(task_file)],
                          capture_output=True, check=True)
    assert done.stderr.decode().endswith("pandas not imported")
    counts = _decode_counts(len(concepts))(done.stdout)
    assert counts.documents.tolist() == [5, 1, 1]  # dog (dogs, DOGS, hot dog too), hot dog, café
    assert counts.rows == len(CAPTIONS)
    assert dict(counts.skipped) == {"null": 1, "empty": 2}
