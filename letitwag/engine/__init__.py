"""Sharded execution that knows no stage: ``map(shard) -> partial``, associative ``merge``.

A shard's partial is written atomically with a completion marker; a rerun skips completed
shards. The local executor (process pool) and the Ray executor run the same functions and
give identical output.

Modules: ``shards`` (``Shard``: key, spec, fingerprint), ``store`` (partials and completion
markers, written by the driver only, so a Ray cluster needs no shared storage), ``executors``
(``LocalExecutor``, ``RayExecutor``, ``make_executor``) and ``run`` (``run_shards``, then
``merged`` / ``iter_partials`` to fold the stored partials in shard order).
"""
