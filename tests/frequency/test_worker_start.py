"""A ``phrase`` worker forked after the fork server's preload starts counting at once: its first
parquet shard imports no pandas (see ``letitwag.arrow_buffers``) and loads no new compiled
specialisation of the kernel.

Why a test: pyarrow imports pandas (~0.3 s) on the first ``pa.array``/``pa.scalar``/``to_numpy``
of a process, and numba loads (or compiles) a new specialisation for any new argument layout
(~0.1 s, or seconds); either would be paid by every worker of every run, or by the fork server
before the first shard. One stray call brings that back unnoticed, so a fresh interpreter does
what a worker does (the preload, then one shard with nulls, blanks, non-ASCII rows and rows only
``normalize_text`` settles) and reports what it imported and loaded.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.concepts import Concept, ConceptList
from letitwag.frequency.count import _WORKER_PRELOAD
from letitwag.frequency.text.matcher import TextMatcher
from letitwag.frequency.text.partials import TextCountTask, counts_decoder
from letitwag.frequency.text.readers import plan_caption_slices

CAPTIONS = ["a dog on the beach", None, "", "   ", "café dogs", "İstanbul hot dog", "ΣΟΦΙΑ's dog", "two DOGS"]

_WORKER = """
import importlib, pickle, sys
for module in {preload!r}:
    importlib.import_module(module)
from letitwag.frequency.text import kernel as phrase_kernel
loaded = len(phrase_kernel.count_phrases.signatures)
with open(sys.argv[1], "rb") as handle:
    task, piece = pickle.load(handle)
sys.stdout.buffer.write(task(piece))
sys.stderr.write(f"pandas: {{'pandas' in sys.modules}}, new kernel specialisations: "
                 f"{{len(phrase_kernel.count_phrases.signatures) - loaded}}")
"""


def test_a_phrase_worker_counts_a_parquet_shard_without_importing_pandas_or_loading_kernels(tmp_path):
    path = tmp_path / "captions.parquet"
    pq.write_table(pa.table({"caption": pa.array(CAPTIONS, pa.string())}), path)
    concepts = ConceptList([Concept("dog"), Concept("hot_dog"), Concept("café")])
    [piece] = plan_caption_slices([str(path)])
    task_file = tmp_path / "task.pkl"
    task_file.write_bytes(pickle.dumps((TextCountTask(TextMatcher(concepts), postings=False), piece)))
    done = subprocess.run([sys.executable, "-c", _WORKER.format(preload=_WORKER_PRELOAD["phrase"]), str(task_file)],
                          capture_output=True, check=True)
    assert done.stderr.decode().endswith("pandas: False, new kernel specialisations: 0")
    counts = counts_decoder(len(concepts))(done.stdout)
    assert counts.documents.tolist() == [5, 1, 1]  # dog (dogs, DOGS, hot dog too), hot dog, café
    assert counts.rows == len(CAPTIONS)
    assert dict(counts.skipped) == {"null": 1, "empty": 2}
