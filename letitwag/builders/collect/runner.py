"""Run collect sources unit by unit and write the candidate manifest.

Candidate ids: ``<source key>/...`` for folder and kNN sources (two folders or two backends may
reuse a relative path or a result id for different images), ``urls/<concept>/<url hash>`` for URL
lists (the same URL for the same concept is the same candidate, whichever list named it).

Why units: a source's work splits into independent units (a concept folder, a tar, a block of
URLs, one concept's kNN queries). Each finished unit's rows land atomically in
``OUT/sources/<source key>/units/<unit hash>.parquet`` — the completion marker — so after a
``kill -9`` a rerun skips finished units and redoes only the one in flight. The manifest
(``candidates.parquet`` + provenance) and ``rejections.parquet`` are rebuilt from all unit files
at the end, sorted by (concept order, candidate_id), so the same inputs give the same bytes.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from letitwag import __version__
from letitwag.builders.collect.records import REJECTION_SCHEMA
from letitwag.builders.manifest import CANDIDATE_SCHEMA, conform, write_candidates
from letitwag.concepts import ConceptList
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_with, text_sha256

logger = logging.getLogger(__name__)

REJECTIONS_FILE = "rejections.parquet"


@dataclass
class CollectOptions:
    """Knobs shared by the sources (each reads the ones it needs)."""

    timeout: float = 10.0  # seconds per download / kNN request
    retries: int = 2
    download_threads: int = 16
    urls_per_unit: int = 1000
    knn_num_images: int = 100
    knn_templates: str = "simple"  # a prompt set in letitwag/data/templates.json
    knn_max_templates: int = 1
    knn_indice: str | None = None
    knn_deduplicate: bool = True
    knn_safety: bool = False
    knn_violence: bool = False
    knn_modality: str = "image"


@dataclass
class UnitResult:
    """What one unit produced: candidate rows (manifest columns) and rejections."""

    candidates: list[dict]
    rejections: list[dict]


class Source:
    """One ``--source`` spec; subclasses list units and run one unit at a time."""

    kind = ""

    def __init__(self, argument: str, options: CollectOptions) -> None:
        self.argument = argument
        self.options = options

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.argument}"

    @property
    def key(self) -> str:
        return f"{self.kind}-{text_sha256(self.spec)[:12]}"

    def units(self, concepts: ConceptList) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def run_unit(self, unit: str, concepts: ConceptList, workdir: Path, manifest_dir: Path) -> UnitResult:
        raise NotImplementedError  # pragma: no cover - interface

    def describe(self) -> dict:
        """Provenance for this source (its spec and anything it learnt, e.g. backend info)."""
        return {"spec": self.spec}


def make_source(spec: str, options: CollectOptions) -> Source:
    """``folder:PATH``, ``urls:FILE`` or ``knn:URL`` -> a source object."""
    from letitwag.builders.collect.folder import FolderSource
    from letitwag.builders.collect.knn import KnnSource
    from letitwag.builders.collect.urls import UrlListSource

    kinds = {cls.kind: cls for cls in (FolderSource, UrlListSource, KnnSource)}
    kind, sep, argument = spec.partition(":")
    if not sep or kind not in kinds or not argument:
        raise UserInputError(f"--source {spec!r}: use folder:PATH, urls:FILE or knn:URL")
    return kinds[kind](argument, options)


_UNIT_SCHEMA = pa.schema(list(CANDIDATE_SCHEMA))


def _unit_path(workdir: Path, unit: str) -> Path:
    return workdir / "units" / f"{text_sha256(unit)[:24]}.parquet"


def _write_unit(path: Path, unit: str, result: UnitResult) -> None:
    rejections = pa.Table.from_pylist(result.rejections, schema=REJECTION_SCHEMA)
    atomic_write_with(path.with_suffix(".rejections.parquet"), lambda tmp: pq.write_table(rejections, tmp))
    table = conform(pa.Table.from_pylist(result.candidates), _UNIT_SCHEMA, str(path)) if result.candidates else (
        _UNIT_SCHEMA.empty_table())
    table = table.replace_schema_metadata({"unit": unit})
    atomic_write_with(path, lambda tmp: pq.write_table(table, tmp))  # written last: the completion marker


def run_source(source: Source, concepts: ConceptList, out: Path) -> tuple[list[Path], dict]:
    """Run every unfinished unit of ``source``; returns its unit files and counts."""
    from tqdm import tqdm

    workdir = out / "sources" / source.key
    units = source.units(concepts)
    paths = [_unit_path(workdir, unit) for unit in units]
    todo = [(unit, path) for unit, path in zip(units, paths) if not path.exists()]
    if len(todo) < len(units):
        logger.info("%s: %d of %d units already done, resuming", source.spec, len(units) - len(todo), len(units))
    for unit, path in tqdm(todo, desc=f"collect {source.kind}", unit="unit"):
        _write_unit(path, unit, source.run_unit(unit, concepts, workdir, out))
    return paths, {"units": len(units), "resumed_units": len(units) - len(todo)}


def _sorted_candidates(tables: list[pa.Table], concepts: ConceptList) -> pa.Table:
    table = pa.concat_tables(tables, promote_options="default") if tables else _UNIT_SCHEMA.empty_table()
    unknown = set(pc.unique(table["concept_id"]).to_pylist()) - set(concepts.ids)
    if unknown:
        raise RuntimeError(f"sources produced concept ids outside the list: {sorted(unknown)[:5]}")
    order = pa.array([concepts.index(c) for c in table["concept_id"].to_pylist()], type=pa.int64())
    table = table.append_column("_order", order).sort_by([("_order", "ascending"), ("candidate_id", "ascending")])
    table = table.drop_columns(["_order"])
    ids = table["candidate_id"].to_pylist()
    first = [i for i, cid in enumerate(ids) if i == 0 or cid != ids[i - 1]]  # the same item from two sources
    return table.take(pa.array(first, type=pa.int64())) if len(first) < len(ids) else table


def collect(concepts: ConceptList, specs: list[str], out: str | Path, options: CollectOptions | None = None) -> Path:
    """Collect candidates for ``concepts`` from every source into the manifest directory ``out``."""
    options = options or CollectOptions()
    out = Path(out)
    if not specs:
        raise UserInputError("give at least one --source (folder:PATH, urls:FILE or knn:URL)")
    sources = [make_source(spec, options) for spec in specs]
    unit_files: list[Path] = []
    described = []
    for source in sources:
        paths, counts = run_source(source, concepts, out)
        unit_files.extend(paths)
        described.append(source.describe() | counts | {"key": source.key})
    candidates = _sorted_candidates([pq.read_table(path) for path in unit_files], concepts)
    rejections = pa.concat_tables([pq.read_table(path.with_suffix(".rejections.parquet")) for path in unit_files]
                                  or [REJECTION_SCHEMA.empty_table()])
    rejections = rejections.sort_by([("source", "ascending"), ("item", "ascending"), ("concept_id", "ascending")])
    atomic_write_with(out / REJECTIONS_FILE, lambda tmp: pq.write_table(rejections, tmp, compression="zstd"))
    per_concept = {c: 0 for c in concepts.ids}
    for concept_id in candidates["concept_id"].to_pylist():
        per_concept[concept_id] += 1
    provenance = {
        "tool": f"letitwag {__version__}",
        "stage": "collect",
        "concepts": {"name": concepts.name, "count": len(concepts), "ids_sha256": text_sha256("\n".join(concepts.ids))},
        "sources": described,
        "options": asdict(options),
        "counts": {"candidates": candidates.num_rows, "rejections": rejections.num_rows,
                   "per_concept": per_concept,
                   "rejections_by_status": _count(rejections["status"].to_pylist())},
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_candidates(out, candidates, provenance)
    logger.info("%s: %d candidates, %d rejections (see %s)", out, candidates.num_rows, rejections.num_rows,
                out / REJECTIONS_FILE)
    return out


def _count(values: list) -> dict:
    return dict(sorted(Counter(values).items()))
