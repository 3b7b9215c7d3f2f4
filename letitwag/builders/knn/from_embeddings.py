"""``letitwag knn build --embeddings``: index precomputed embedding shards, streaming and resumable.

Why this shape: LAION-scale embeddings (10M+ vectors, tens of GB) do not fit in memory, and a
build of many minutes must survive ``kill -9``. Each shard (``.npy`` + parquet, see
``letitwag.builders.knn.embeddings``) is one unit of work, read in bounded chunks:

1. plan: shard shapes are checked, the index chosen (``index_choice``), the query sets for the
   recall measurement fixed; all recorded in ``OUT/.build/plan.json`` and ``queries.npz``;
2. train (ivfpq): a sample spread over all shards trains the quantisers -> ``trained.index``;
3. map each shard -> its partial, written atomically before its ``shard-N.done`` marker:
   ivfpq its own small index of codes (``shard-N.index``), flat its normalised vectors written
   in place into the preallocated flat file, hnsw the growing graph; and for every approximate
   index the shard's exact top-k of the recall queries (``shard-N.topk.npz``), computed while
   the shard is in memory anyway;
4. merge: ivfpq lists are merged on disk (faiss ``merge_ondisk`` -> ``image.ivfdata``, never all
   in memory), metadata streamed into ``metadata.arrow``, the exact top-k partials folded;
5. measure: the finished index is opened as the server opens it; the smallest search depth whose
   recall@k reaches ``target_recall`` on the tuning queries is chosen, then recall is measured on
   the evaluation sets with that depth and written to ``index.json`` (last: the marker).

A rerun after a kill skips finished shards; a rerun of a finished build returns at once.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from letitwag.builders.knn.embeddings import EmbeddingShard, find_shards, normalise
from letitwag.builders.knn.index_choice import REFINE_K_FACTORS, IndexPlan, choose_index
from letitwag.builders.knn.recall import ExactTopK, QuerySet, measure, tune_depth
from letitwag.builders.knn.store import (
    CONFIG_FILE,
    LISTS_FILE,
    REFINE_FILE,
    VECTORS_FILE,
    codes_file_header,
    metadata_table,
    read_vectors,
    write_config,
    write_metadata,
)
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json, atomic_write_with

logger = logging.getLogger(__name__)

BUILD_DIR = ".build"


@dataclass
class EmbeddingBuildOptions:
    """How to index: see ``letitwag knn build --help`` for each option's meaning."""

    index_type: str = "auto"
    max_index_memory: int = 4 * 2**30
    model: str | None = None
    modality: str = "image"
    recall_k: int = 40
    target_recall: float = 0.9
    recall_queries: dict[str, str] = field(default_factory=dict)
    sample_queries: int = 1000
    tune_queries: int = 500
    threads: int = 2
    seed: int = 0
    chunk_rows: int = 65_536


class _Work:
    """The ``.build`` folder: plan, markers and partials of one build."""

    def __init__(self, out: Path, record: dict) -> None:
        self.dir = out / BUILD_DIR
        plan_path = self.dir / "plan.json"
        if plan_path.exists():
            previous = json.loads(plan_path.read_text(encoding="utf-8"))
            if previous != record:
                changed = sorted(k for k in record if previous.get(k) != record[k])
                raise UserInputError(f"{out}: an unfinished build with different {', '.join(changed)} is there; "
                                     f"use another --out or delete {self.dir} to start over")
        else:
            atomic_write_json(plan_path, record)

    def path(self, name: str) -> Path:
        return self.dir / name

    def done(self, shard: EmbeddingShard) -> bool:
        return self.path(f"shard-{shard.number:05d}.done").exists()

    def mark_done(self, shard: EmbeddingShard) -> None:
        atomic_write_json(self.path(f"shard-{shard.number:05d}.done"), {"rows": shard.rows})


def _gather_rows(shards: list[EmbeddingShard], ids: np.ndarray) -> np.ndarray:
    """Unit vectors of global ``ids`` (sorted), read shard by shard from the memory-mapped files."""
    out = np.empty((len(ids), shards[0].dim), dtype=np.float32)
    starts = np.array([s.start for s in shards])
    owner = np.searchsorted(starts, ids, side="right") - 1
    for number in np.unique(owner):
        picked = np.flatnonzero(owner == number)
        shard = shards[number]
        out[picked] = shard.vectors()[ids[picked] - shard.start]
    return normalise(out, "sampled rows")


def _query_sets(shards: list[EmbeddingShard], count: int, options: EmbeddingBuildOptions) -> list[QuerySet]:
    """Tuning queries (indexed vectors, leave-one-out) first, then the evaluation sets."""
    rng = np.random.default_rng(options.seed)
    own = options.tune_queries + (0 if options.recall_queries else options.sample_queries)
    ids = rng.choice(count, size=min(own, count), replace=False)
    tune_ids, sample_ids = np.sort(ids[: options.tune_queries]), np.sort(ids[options.tune_queries:])
    sets = [QuerySet("tuning", _gather_rows(shards, tune_ids), tune_ids, "indexed vectors, leave-one-out")]
    if not options.recall_queries:
        sets.append(QuerySet("sample", _gather_rows(shards, sample_ids), sample_ids,
                             "indexed vectors, leave-one-out (not the tuning ones)"))
    dim = shards[0].dim
    for name, path in options.recall_queries.items():
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise UserInputError(f"--recall-queries {name}={path}: not a readable .npy ({error})") from None
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise UserInputError(f"--recall-queries {path}: shape {vectors.shape}; the index needs [queries, {dim}]")
        sets.append(QuerySet(name, normalise(vectors.astype(np.float32), str(path)),
                             np.full(len(vectors), -1, dtype=np.int64), f"held out: {path}"))
    return sets


def _saved_query_sets(work: _Work, make) -> list[QuerySet]:
    """The query sets fixed on the first run (so a resumed build measures the same queries)."""
    path = work.path("queries.npz")
    if not path.exists():
        sets = make()
        arrays = {f"{i}.vectors": s.vectors for i, s in enumerate(sets)} | {
            f"{i}.self_ids": s.self_ids for i, s in enumerate(sets)}
        names = json.dumps([[s.name, s.source] for s in sets])

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, names=np.array(names), **arrays)

        atomic_write_with(path, write)
    with np.load(path, allow_pickle=False) as saved:
        names = json.loads(str(saved["names"]))
        return [QuerySet(name, saved[f"{i}.vectors"], saved[f"{i}.self_ids"], source)
                for i, (name, source) in enumerate(names)]


def _train(work: _Work, plan: IndexPlan, shards: list[EmbeddingShard], count: int, seed: int):
    """The trained (empty) inverted-list index and refine codec, from a sample spread over all shards."""
    import faiss

    paths = work.path("trained.index"), work.path("trained-refine.index")
    if all(p.exists() for p in paths[: 1 + bool(plan.refine)]):
        return faiss.read_index(str(paths[0])), faiss.read_index(str(paths[1])) if plan.refine else None
    rng = np.random.default_rng([seed, 1])
    sample = _gather_rows(shards, np.sort(rng.choice(count, size=plan.train_size, replace=False)))
    dim = shards[0].dim
    index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.do_polysemous_training = False  # polysemous codes are unused here and their training takes minutes
    started = time.perf_counter()
    logger.info("training %s on %d sampled vectors", plan.factory, len(sample))
    index.train(sample)
    refine = None
    if plan.refine:
        refine = faiss.index_factory(dim, plan.refine, faiss.METRIC_INNER_PRODUCT)
        refine.train(sample)
        atomic_write_with(paths[1], lambda tmp: faiss.write_index(refine, str(tmp)))
    logger.info("trained in %.0f s", time.perf_counter() - started)
    atomic_write_with(paths[0], lambda tmp: faiss.write_index(index, str(tmp)))
    return index, refine


class _CodesFile:
    """A preallocated faiss IndexFlatCodes file (flat vectors or refine codes) filled shard by shard."""

    def __init__(self, path: Path, empty_index, count: int) -> None:
        self.path, self.codec = path, empty_index
        self.header = len(codes_file_header(empty_index, count))
        if not path.exists():
            header = codes_file_header(empty_index, count)

            def preallocate(tmp: Path) -> None:
                with open(tmp, "wb") as handle:
                    handle.write(header)
                    handle.truncate(len(header) + count * empty_index.code_size)

            atomic_write_with(path, preallocate)

    def write(self, chunks) -> None:
        """Encode ``(first id, unit vectors)`` chunks into place, then flush them to disk."""
        with open(self.path, "r+b") as handle:
            for first, chunk in chunks:
                codes = self.codec.sa_encode(chunk)
                os.pwrite(handle.fileno(), codes.tobytes(), self.header + first * self.codec.code_size)
            os.fsync(handle.fileno())


def _save_topk(work: _Work, shard: EmbeddingShard, exact: ExactTopK) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, scores=exact.scores, ids=exact.ids)

    atomic_write_with(work.path(f"shard-{shard.number:05d}.topk.npz"), write)


def _map_ivf(work: _Work, shard: EmbeddingShard, trained, refine: _CodesFile | None, queries: np.ndarray,
             k: int, chunk_rows: int) -> None:
    import faiss

    index = faiss.clone_index(trained)
    exact = ExactTopK(queries, k)
    for start, chunk in shard.normalised_chunks(chunk_rows):
        first = shard.start + start
        index.add_with_ids(chunk, np.arange(first, first + len(chunk), dtype=np.int64))
        exact.update(chunk, first)
        if refine is not None:
            refine.write([(first, chunk)])
    atomic_write_with(work.path(f"shard-{shard.number:05d}.index"), lambda tmp: faiss.write_index(index, str(tmp)))
    _save_topk(work, shard, exact)


def _map_hnsw(work: _Work, shard: EmbeddingShard, index, queries: np.ndarray, k: int, chunk_rows: int) -> None:
    import faiss

    exact = ExactTopK(queries, k)
    for start, chunk in shard.normalised_chunks(chunk_rows):
        index.add(chunk)
        exact.update(chunk, shard.start + start)
    _save_topk(work, shard, exact)  # before the graph: the graph's size says which shards it holds
    atomic_write_with(work.path("hnsw.index"), lambda tmp: faiss.write_index(index, str(tmp)))


def _hnsw_index(work: _Work, shards: list[EmbeddingShard], plan: IndexPlan):
    """The graph so far; shards it already holds are marked done (they are added in order)."""
    import faiss

    path = work.path("hnsw.index")
    if not path.exists():
        return faiss.index_factory(shards[0].dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    index = faiss.read_index(str(path))
    for shard in shards:
        if shard.start + shard.rows <= index.ntotal and not work.done(shard):
            work.mark_done(shard)
    return index


def _assemble_vectors(work: _Work, out: Path, plan: IndexPlan, shards: list[EmbeddingShard]) -> None:
    """Move or merge the partials into ``out``; safe to repeat after a kill part-way (moves are checked)."""
    import faiss

    def move(name: str, target: str) -> None:
        if work.path(name).exists():
            os.replace(work.path(name), out / target)

    if plan.kind == "flat":
        move("flat.index", VECTORS_FILE)
    elif plan.kind == "hnsw":
        move("hnsw.index", VECTORS_FILE)
    else:
        from faiss.contrib.ondisk import merge_ondisk

        index = faiss.read_index(str(work.path("trained.index")))
        parts = [str(work.path(f"shard-{s.number:05d}.index")) for s in shards]
        (out / LISTS_FILE).unlink(missing_ok=True)
        logger.info("merging %d shard indices into %s", len(parts), out / LISTS_FILE)
        merge_ondisk(index, parts, str(out / LISTS_FILE))
        atomic_write_with(out / VECTORS_FILE, lambda tmp: faiss.write_index(index, str(tmp)))
        if plan.refine:
            move("refine.index", REFINE_FILE)


def _metadata_tables(shards: list[EmbeddingShard]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for shard in shards:
        parquet = pq.ParquetFile(shard.metadata_path)
        wanted = [n for n in parquet.schema_arrow.names if n.lower() in ("image_path", "url", "caption", "license")]
        first = shard.start
        for batch in parquet.iter_batches(batch_size=65_536, columns=wanted):
            yield metadata_table(pa.Table.from_batches([batch]), first)
            first += batch.num_rows


def _exact_topk(work: _Work, shards: list[EmbeddingShard], queries: np.ndarray, k: int) -> ExactTopK:
    exact = ExactTopK(queries, k)
    for shard in shards:
        with np.load(work.path(f"shard-{shard.number:05d}.topk.npz"), allow_pickle=False) as part:
            exact.merge(part["scores"], part["ids"])
    return exact


def _recall_record(out: Path, config: dict, sets: list[QuerySet], exact: ExactTopK,
                   options: EmbeddingBuildOptions) -> dict:
    """Open the index as served, pick the search depth on the tuning set, measure every other set."""
    import faiss

    index = read_vectors(out, config)
    k = options.recall_k
    bounds = np.cumsum([0] + [len(s.vectors) for s in sets])
    exact_of = {s.name: exact.ids[bounds[i]:bounds[i + 1]] for i, s in enumerate(sets)}
    tuning = sets[0]
    k_factors = REFINE_K_FACTORS if config["plan"]["refine"] else (0,)
    params, curve = tune_depth(index, tuning, exact_of[tuning.name], k, options.target_recall, k_factors)
    faiss.ParameterSpace().set_index_parameters(index, ",".join(f"{key}={v}" for key, v in params.items()))
    record = {"k": k, "target": options.target_recall, "exact": False, "search_params": params,
              "tuning": {"queries": len(tuning.vectors), "source": tuning.source,
                         "recall_by_setting": curve},
              "sets": {}}
    for query_set in sets[1:]:
        record["sets"][query_set.name] = {
            "queries": len(query_set.vectors), "source": query_set.source,
            "recall_at_k": round(measure(index, query_set, exact_of[query_set.name], k), 4)}
    return record


def build_from_embeddings(embeddings: str | Path, out: str | Path, metadata: str | Path | None = None,
                          options: EmbeddingBuildOptions | None = None) -> Path:
    """Index the embedding shards under ``embeddings`` into ``out``; see the module docstring."""
    import faiss
    from tqdm import tqdm

    options = options or EmbeddingBuildOptions()
    out = Path(out)
    shards = find_shards(embeddings, metadata, options.modality)
    count, dim = shards[-1].start + shards[-1].rows, shards[0].dim
    plan = choose_index(count, dim, options.index_type, options.max_index_memory)
    record = {"shards": [[str(s.vectors_path.resolve()), str(s.metadata_path.resolve()), s.rows, s.dtype]
                         for s in shards],
              "plan": plan.to_json(), "options": {k: v for k, v in asdict(options).items() if k != "threads"}}
    if (out / CONFIG_FILE).exists() and not (out / BUILD_DIR).exists():
        config = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
        if config.get("build") == record:
            logger.info("%s is already built (%d vectors); nothing to do", out, count)
            return out
        raise UserInputError(f"{out}: already holds another index; give another --out")
    faiss.omp_set_num_threads(options.threads)
    started = time.perf_counter()
    work = _Work(out, record)
    logger.info("%d vectors of width %d in %d shard(s): %s (%s)", count, dim, len(shards), plan.factory, plan.reason)
    sets = [] if plan.kind == "flat" else _saved_query_sets(work, lambda: _query_sets(shards, count, options))
    queries = np.concatenate([s.vectors for s in sets]) if sets else None
    k = options.recall_k + 1  # one more for leave-one-out
    todo = [s for s in shards if not work.done(s)]
    trained = hnsw = codes = None
    if plan.kind == "ivfpq" and todo:
        trained, refine = _train(work, plan, shards, count, options.seed)
        codes = _CodesFile(work.path("refine.index"), refine, count) if refine is not None else None
    elif plan.kind == "hnsw" and todo:
        hnsw = _hnsw_index(work, shards, plan)
        todo = [s for s in shards if not work.done(s)]
    elif plan.kind == "flat" and todo:
        codes = _CodesFile(work.path("flat.index"), faiss.IndexFlatIP(dim), count)
    if len(todo) < len(shards):
        logger.info("resuming: %d of %d shards already indexed", len(shards) - len(todo), len(shards))
    for shard in tqdm(todo, desc="indexing shards", unit="shard"):
        if plan.kind == "ivfpq":
            _map_ivf(work, shard, trained, codes, queries, k, options.chunk_rows)
        elif plan.kind == "hnsw":
            _map_hnsw(work, shard, hnsw, queries, k, options.chunk_rows)
        else:
            codes.write((shard.start + start, chunk) for start, chunk in shard.normalised_chunks(options.chunk_rows))
        work.mark_done(shard)
    _assemble_vectors(work, out, plan, shards)
    written = write_metadata(out, _metadata_tables(shards))
    if written != count:
        raise UserInputError(f"{embeddings}: metadata changed during the build ({written} rows for {count} vectors)")
    config = {"model": options.model, "embeddings": str(Path(embeddings).resolve()), "modality": options.modality,
              "factory": plan.factory, "plan": plan.to_json(), "synthetic": False, "build": record,
              "index_type": plan.kind, "search_params": {}}
    if plan.kind == "flat":
        recall = {"exact": True, "k": options.recall_k, "search_params": {}}
    else:
        recall = _recall_record(out, config, sets, _exact_topk(work, shards, queries, k), options)
    config |= {"search_params": recall["search_params"], "recall": recall, "build_seconds": round(
        time.perf_counter() - started, 1), "built": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")}
    write_config(out, config, dim=dim, count=count, index_type=plan.kind)
    shutil.rmtree(work.dir, ignore_errors=True)
    logger.info("wrote %s: %s over %d vectors; recall %s", out, plan.factory, count,
                {name: s["recall_at_k"] for name, s in recall.get("sets", {}).items()} or "exact")
    return out
