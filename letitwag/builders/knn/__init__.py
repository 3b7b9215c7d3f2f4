"""A clip-retrieval-compatible kNN backend over local images: build an index, serve it.

Why our own backend: the public LAION kNN service is gone and ``clip-retrieval`` cannot be
installed beside this project's stack, yet the dataset builder's ``knn:`` source speaks its REST
protocol. ``letitwag knn build`` embeds an image folder with any ``letitwag.models`` encoder into
an exact inner-product faiss index, or indexes precomputed embeddings (LAION's release) into an
index chosen by size and memory budget; ``letitwag knn serve`` answers ``POST /knn-service`` and
``GET /indices-list`` exactly as clip-retrieval's ``clip_back`` does, so the same client works
against both.

Modules: ``protocol`` (request/response contract), ``store`` (index files on disk, memory-mapped
reading), ``build`` (resumable embedding of an image folder), ``embeddings`` (LAION /
clip-retrieval embedding shards), ``index_choice`` (which faiss index for a size and memory
budget), ``from_embeddings`` (streaming, resumable indexing of shards), ``recall`` (recall
against exact search, search-depth tuning), ``batching`` (micro-batches for concurrent
queries), ``service`` (query logic, no HTTP), ``server`` (the ASGI app and uvicorn runner).
"""
