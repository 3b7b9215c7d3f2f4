"""Text side of the frequency engine: captions in, per-concept document/occurrence counts out.

``readers`` cut caption files into shards; ``tokens`` split captions exactly like
``normalize_text``; ``forms`` knows each concept word's caption forms; ``matcher`` (numpy) and
``kernel`` (compiled) find concepts; ``partials`` is the per-shard map step the workers run.
Empty on purpose: workers import ``partials`` alone.
"""
