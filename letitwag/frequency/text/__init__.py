"""Text side of the frequency engine: captions in, per-concept document/occurrence counts out.

``readers`` cut caption files into shards; ``tokens`` split captions exactly like
``normalize_text``; ``forms`` knows each concept word's caption forms; ``matcher`` (numpy) and
``kernel`` (compiled) find concepts; ``partials`` is the per-shard map step the workers run.
``--mode paper`` adds ``pipelines`` (which spaCy pipeline, loaded how) and ``paper`` (its map
step: the fast matcher picks the captions worth tagging, spaCy tags them).
Empty on purpose: workers import ``partials`` alone.
"""
