"""Frequency engine: how often each concept occurs in a pretraining corpus.

The paper's central quantity, and the input of mining (``letitwag.builders.mine``), the harness's
frequency bins and the analysis. Three sides, each writing a ``FrequencyTable``:

* ``text/``: captions -> text counts (readers, tokens, word forms, matcher, compiled kernel,
  per-shard partials); ``count.count_text`` is the driver behind ``letitwag frequency count``;
* ``images/``: images -> image tags (pluggable taggers) -> image counts;
* ``alignment``: both sides together -> matched counts and the misalignment degree.

This package imports no builder, harness, analysis or leaderboard code, and its ``__init__``
stays empty on purpose: counting workers import ``text.partials`` alone, and anything imported
here would be loaded by every worker.
"""
