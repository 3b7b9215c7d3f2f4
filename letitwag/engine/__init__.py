"""Sharded execution that knows no stage: ``map(shard) -> partial``, associative ``merge``.

A shard's partial is written atomically with a completion marker; a rerun skips completed
shards. The local executor (process pool) and the Ray executor run the same functions and
give identical output.
"""
