"""Candidate and curated image manifests: the contract between collect, curate and publish.

Why one module: collection (folder / URL list / kNN backend) and curation are written by
different people and run at different times; they only meet through these files, so the
columns, their types and the way an image is located are defined once, here.

Candidate manifest — ``letitwag.candidates/1``
    A directory holding ``candidates.parquet`` and ``candidates.provenance.json``. One row per
    candidate image:

    ============== ========================= ==============================================
    column         type                      meaning
    ============== ========================= ==============================================
    candidate_id   string (unique, required) stable key of the row (e.g. ``knn/<id>``);
                                             curation decisions and resume key on it
    concept_id     string (required)         concept id (``letitwag.concepts`` id)
    image          struct<bytes: binary,     the image, as in Hugging Face ``Image``
                   path: string>             storage: inline ``bytes``, or ``path``
                                             relative to the manifest directory (or
                                             absolute). One of the two is non-null.
    source         string                    ``folder``, ``urls``, ``knn`` (or your own)
    url            string, nullable          where the image came from
    license        string, nullable          its license, if known
    width, height  int32, nullable           pixel size as reported by the source/header
    size_bytes     int64, nullable           size of the encoded image file
    sha256         string, nullable          sha256 of the encoded bytes (hex)
    similarity     float32, nullable         kNN similarity to the query (``knn`` source)
    caption        string, nullable          caption/alt text, if any
    ============== ========================= ==============================================

    Extra columns are allowed and carried through curation untouched. Missing optional
    columns are added as nulls by :func:`read_candidates`.

Curated manifest — ``letitwag.curated/1``
    A directory with ``curated.parquet`` + ``curated.provenance.json`` (and the curation
    report). Every candidate row appears once, with the candidate columns (``image.path`` is
    re-expressed relative to the curated directory; images converted to RGB by validation are
    written under ``images/``) plus the decisions of each step:

    ============== ========================= ==============================================
    pixel_sha256   string, nullable          sha256 of the decoded RGB pixels (+ size)
    phash          string, nullable          64-bit pHash, 16 hex digits, bit-compatible
                                             with imagededup's ``PHash().encode_image``
    group          string                    ``common`` / ``fine-grained`` (from the
                                             concept's source list) or the user's value
    label          int32                     class index (concept list order)
    kept           bool                      True when the row is in the final dataset
    rejected_by    string, nullable          first step that removed the row
    reason         string, nullable          why (decode error text, ``duplicate of X``..)
    duplicate_of   string, nullable          candidate_id of the kept twin (dedup steps)
    outlier_score  float32, nullable         mean similarity to the rest of the concept
    relevance      float32, nullable         image-text similarity to the concept prompts
    ============== ========================= ==============================================

Rows are sorted by (label, candidate_id), so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json, atomic_write_with

CANDIDATES_FORMAT = "letitwag.candidates/1"
CURATED_FORMAT = "letitwag.curated/1"
CANDIDATES_FILE = "candidates.parquet"
CURATED_FILE = "curated.parquet"

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

CANDIDATE_SCHEMA = pa.schema(
    [
        ("candidate_id", pa.string()),
        ("concept_id", pa.string()),
        ("image", IMAGE_TYPE),
        ("source", pa.string()),
        ("url", pa.string()),
        ("license", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("size_bytes", pa.int64()),
        ("sha256", pa.string()),
        ("similarity", pa.float32()),
        ("caption", pa.string()),
    ]
)
REQUIRED_CANDIDATE_COLUMNS = ("candidate_id", "concept_id", "image")

DECISION_SCHEMA = pa.schema(
    [
        ("pixel_sha256", pa.string()),
        ("phash", pa.string()),
        ("group", pa.string()),
        ("label", pa.int32()),
        ("kept", pa.bool_()),
        ("rejected_by", pa.string()),
        ("reason", pa.string()),
        ("duplicate_of", pa.string()),
        ("outlier_score", pa.float32()),
        ("relevance", pa.float32()),
    ]
)
CURATED_SCHEMA = pa.schema(list(CANDIDATE_SCHEMA) + list(DECISION_SCHEMA))


class ManifestError(UserInputError):
    """A manifest that cannot be used; the message names the file/row and what to do."""


def _check_format(path: Path, provenance: dict, expected: str) -> None:
    found = provenance.get("format")
    if found is None:
        return
    name, _, version = str(found).partition("/")
    want_name, _, want_version = expected.partition("/")
    if name != want_name or version.split(".")[0] != want_version.split(".")[0]:
        raise ManifestError(f"{path}: format {found!r} is not {expected!r}; write it with a matching letitwag")


def conform(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    """Cast ``table`` to ``schema``'s known columns, adding absent optional ones as nulls.

    Columns not in ``schema`` are kept (after the known ones) so sources can add fields.
    """
    columns, fields = [], []
    for schema_field in schema:
        if schema_field.name in table.column_names:
            column = table[schema_field.name]
            if column.type != schema_field.type:
                try:
                    column = column.cast(schema_field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                    raise ManifestError(
                        f"{where}: column {schema_field.name!r} has type {column.type}, expected "
                        f"{schema_field.type} ({error})"
                    ) from None
        else:
            column = pa.nulls(table.num_rows, schema_field.type)
        columns.append(column)
        fields.append(schema_field)
    for name in table.column_names:
        if name not in schema.names:
            columns.append(table[name])
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def validate_candidates(table: pa.Table, where: str, check_images: bool = True) -> None:
    """Raise ``ManifestError`` naming the first bad row: required columns, unique ids, an image."""
    missing = [name for name in REQUIRED_CANDIDATE_COLUMNS if name not in table.column_names]
    if missing:
        raise ManifestError(f"{where}: missing column(s) {', '.join(missing)}; see letitwag.builders.manifest")
    for name in ("candidate_id", "concept_id"):
        nulls = pc.is_null(table[name])
        if pc.any(nulls).as_py():
            row = pc.index(nulls, True).as_py()
            raise ManifestError(f"{where}: row {row} has no {name}; give every row one")
    ids = table["candidate_id"]
    if pc.count_distinct(ids).as_py() != table.num_rows:
        counts = pc.value_counts(ids)
        duplicate = next(item["values"].as_py() for item in counts if item["counts"].as_py() > 1)
        raise ManifestError(f"{where}: candidate_id {duplicate!r} appears more than once; ids must be unique")
    if not check_images:
        return
    image = table["image"]
    no_bytes = pc.is_null(pc.struct_field(image, "bytes"))
    no_path = pc.is_null(pc.struct_field(image, "path"))
    empty = pc.and_(no_bytes, no_path)
    if pc.any(empty).as_py():
        row = pc.index(empty, True).as_py()
        raise ManifestError(f"{where}: row {row} has neither image bytes nor an image path")


@dataclass
class Manifest:
    """A manifest directory read into memory: ``table`` (conformed), ``provenance`` dict."""

    directory: Path
    table: pa.Table
    provenance: dict = field(default_factory=dict)

    def resolve_path(self, relative: str) -> Path:
        """An ``image.path`` value as a filesystem path (relative ones are under ``directory``)."""
        return Path(relative) if os.path.isabs(relative) else self.directory / relative


def _read(directory: str | Path, file_name: str, expected_format: str, schema: pa.Schema) -> Manifest:
    directory = Path(directory)
    path = directory / file_name
    if not path.exists():
        raise ManifestError(f"{directory}: no {file_name} here; give a manifest directory written by letitwag")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise ManifestError(f"{path}: not a readable parquet file ({error})") from None
    sidecar = provenance_path(path)
    provenance = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else {}
    _check_format(sidecar, provenance, expected_format)
    validate_candidates(table, str(path))
    return Manifest(directory, conform(table, schema, str(path)), provenance)


def provenance_path(parquet_path: str | Path) -> Path:
    path = Path(parquet_path)
    return path.with_name(path.name.removesuffix(".parquet") + ".provenance.json")


def read_candidates(directory: str | Path) -> Manifest:
    """Read and check a candidate manifest directory."""
    return _read(directory, CANDIDATES_FILE, CANDIDATES_FORMAT, CANDIDATE_SCHEMA)


def read_candidate_rows(directory: str | Path) -> Manifest:
    """A candidate manifest without image bytes (``image`` column dropped): for jobs that stream images.

    Why: inline image bytes of 130,500 candidates do not fit in memory; curation reads them
    chunk by chunk from the parquet file instead.
    """
    directory = Path(directory)
    path = directory / CANDIDATES_FILE
    if not path.exists():
        raise ManifestError(f"{directory}: no {CANDIDATES_FILE} here; give a manifest directory written by letitwag")
    try:
        names = [name for name in pq.read_schema(path).names if name != "image"]
        table = pq.read_table(path, columns=names)
    except (OSError, pa.ArrowInvalid) as error:
        raise ManifestError(f"{path}: not a readable parquet file ({error})") from None
    sidecar = provenance_path(path)
    provenance = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else {}
    _check_format(sidecar, provenance, CANDIDATES_FORMAT)
    if "image" not in pq.read_schema(path).names:
        raise ManifestError(f"{path}: missing column(s) image; see letitwag.builders.manifest")
    validate_candidates(table.append_column("image", pa.nulls(table.num_rows, IMAGE_TYPE)), str(path),
                        check_images=False)
    schema = pa.schema([f for f in CANDIDATE_SCHEMA if f.name != "image"])
    return Manifest(directory, conform(table, schema, str(path)), provenance)


def read_curated(directory: str | Path) -> Manifest:
    """Read and check a curated manifest directory."""
    return _read(directory, CURATED_FILE, CURATED_FORMAT, CURATED_SCHEMA)


def _write(directory: str | Path, file_name: str, table: pa.Table, provenance: dict, fmt: str) -> Path:
    directory = Path(directory)
    path = directory / file_name
    validate_candidates(table, str(path))
    atomic_write_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", row_group_size=4096))
    atomic_write_json(provenance_path(path), dict(provenance, format=fmt))
    return path


def write_candidates(directory: str | Path, table: pa.Table, provenance: dict | None = None) -> Path:
    """Write a candidate manifest (conformed to ``CANDIDATE_SCHEMA``) atomically; returns the parquet path."""
    validate_candidates(table, str(Path(directory) / CANDIDATES_FILE))
    table = conform(table, CANDIDATE_SCHEMA, str(directory))
    return _write(directory, CANDIDATES_FILE, table, provenance or {}, CANDIDATES_FORMAT)


def write_curated(directory: str | Path, table: pa.Table, provenance: dict | None = None) -> Path:
    """Write a curated manifest (conformed to ``CURATED_SCHEMA``) atomically; returns the parquet path."""
    validate_candidates(table, str(Path(directory) / CURATED_FILE))
    table = conform(table, CURATED_SCHEMA, str(directory))
    return _write(directory, CURATED_FILE, table, provenance or {}, CURATED_FORMAT)


def read_image_bytes(manifest: Manifest, image: dict) -> bytes:
    """The encoded bytes of one ``image`` struct value (inline bytes win over the path)."""
    if image.get("bytes") is not None:
        return image["bytes"]
    return manifest.resolve_path(image["path"]).read_bytes()
