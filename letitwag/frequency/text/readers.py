"""Caption readers: any corpus layout in, Arrow batches of ``(sample_id, caption)`` out, per shard.

Why one module: every counting stage wants the same thing from a corpus, small Arrow batches
of one shard's captions, whatever the files look like. Planning (``plan_caption_slices``)
splits the inputs into ``CaptionSlice`` row ranges of at most ``shard_rows`` rows from file
metadata or one fast byte scan; reading (``read_caption_slice``) streams one slice in batches
of ``BATCH_ROWS``, so memory depends on the batch and shard size, never on the corpus size.

Formats: parquet, CSV, TSV, JSON lines, plain text (one caption per line), webdataset tars
(``.txt`` / ``.json`` members; read as a stream, nothing is extracted to disk) and Hugging Face
``datasets`` (a ``save_to_disk`` folder, or ``hf:<hub id or Hub-layout folder>``).

Bad rows never stop a run: null or blank captions, undecodable bytes, broken JSON lines and
malformed CSV rows are *counted skips* (``ReadStats.skipped``, by reason) and keep their row.
A file that cannot be read at all raises ``CaptionInputError`` naming the file.
"""

from __future__ import annotations

import collections
import functools
import glob
import json
import mmap
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from letitwag.arrow_buffers import primitive_array
from letitwag.engine.shards import file_identity
from letitwag.errors import UserInputError

CAPTION_SCHEMA = pa.schema([("sample_id", pa.string()), ("caption", pa.string())])
# Rows per batch: one 131,072-row group of many writers, ~8 MB of LAION-like text, and the text
# matcher's window (fewer, larger batches: less per-batch overhead than 65,536)
BATCH_ROWS = 131_072
# Rows per counting shard: ~0.3 s of one worker's time, so a pool's last shards finish close
# together and a resumed run redoes little; LAION-400M makes ~1,500 shards. 2**18: two of the
# 131,072-row groups many writers use. (bench_frequency.py --shard-rows compares sizes: on 5M
# captions it could not tell 262,144 from 500,000 apart.)
DEFAULT_SHARD_ROWS = 262_144
# Caption column names tried in this order when --text-column is not given.
TEXT_COLUMN_CANDIDATES = ("caption", "text", "TEXT", "txt", "prompt", "sentence")
SUFFIX_FORMATS = {
    ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
    ".ndjson": "jsonl", ".json": "jsonl", ".txt": "text", ".tar": "webdataset",
}
# In folders, ``.json`` files are metadata far more often than JSON lines: name them explicitly.
FOLDER_SUFFIXES = tuple(suffix for suffix in SUFFIX_FORMATS if suffix != ".json")
HF_PREFIX = "hf:"
_LINE_CHUNK_BYTES = 8 << 20
_SCAN_BLOCK_BYTES = 4 << 20
_MAX_TAR_CAPTION_BYTES = 64 << 20


# What a format reader yields: (first row number, captions as read, ids as read or None).
RawBatch = tuple[int, pa.Array, "pa.Array | None"]


class CaptionInputError(UserInputError):
    """An input that cannot be read; the one-line message names the file and what to do."""


@dataclass(frozen=True)
class CaptionSlice:
    """A row range of one caption source: the ``spec`` of one counting shard.

    ``stop`` is ``None`` for a whole webdataset tar (its sample count is only known by reading
    it). ``byte_start``/``byte_stop`` delimit the rows of line-based files (text, JSONL, CSV).
    """

    format: str
    source: str
    start: int
    stop: int | None
    id_prefix: str
    identity: tuple
    text_column: str | None = None
    id_column: str | None = None
    byte_start: int = 0
    byte_stop: int | None = None
    header: tuple[str, ...] = ()
    split: str | None = None

    @property
    def label(self) -> str:
        return f"{self.id_prefix}.{self.start}"


@dataclass
class ReadStats:
    """Rows read and rows skipped, by reason (``null``, ``empty``, ``invalid_utf8``, ...)."""

    rows: int = 0
    skipped: collections.Counter = field(default_factory=collections.Counter)
    # Nulls a reader made itself (bad bytes, broken JSON) and already counted under their reason.
    nulls_counted: int = 0

    def skip(self, reason: str) -> None:
        """Count a row whose caption the reader replaced by null."""
        self.skipped[reason] += 1
        self.nulls_counted += 1


# --- planning ---------------------------------------------------------------------------------

def expand_caption_inputs(inputs: Sequence[str | Path]) -> list[tuple[str, str]]:
    """``(format, location)`` for every input: files, globs, folders (searched recursively), ``hf:`` ids."""
    found: list[tuple[str, str]] = []
    for raw in inputs:
        text = str(raw)
        if text.startswith(HF_PREFIX):
            found.append(("hf", text[len(HF_PREFIX):]))
            continue
        path = Path(text)
        if not path.exists() and any(char in text for char in "*?["):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise CaptionInputError(f"{text}: the pattern matches no file")
            found.extend(_file_format(Path(m)) for m in matches if Path(m).is_file())
        elif path.is_dir():
            found.extend(_directory_sources(path))
        elif path.exists():
            found.append(_file_format(path))
        else:
            raise CaptionInputError(
                f"{text}: no such caption file or folder (for a Hugging Face dataset write hf:<owner/name>)"
            )
    unique = list(dict.fromkeys(found))
    if not unique:
        raise CaptionInputError("no caption input given: pass --captions FILE/FOLDER/GLOB")
    return unique


def plan_caption_slices(
    inputs: Sequence[str | Path],
    text_column: str | None = None,
    id_column: str | None = None,
    shard_rows: int = DEFAULT_SHARD_ROWS,
) -> list[CaptionSlice]:
    """Split the inputs into row ranges of at most ``shard_rows`` rows, in input order."""
    if shard_rows < 1:
        raise CaptionInputError(f"--shard-rows must be at least 1 (got {shard_rows})")
    sources = expand_caption_inputs(inputs)
    prefixes = _id_prefixes([location for fmt, location in sources if fmt not in ("hf", "hf-disk")])
    slices: list[CaptionSlice] = []
    for fmt, location in sources:
        if fmt in ("hf", "hf-disk"):
            slices.extend(_plan_hf(fmt, location, text_column, id_column, shard_rows))
            continue
        path = Path(location)
        _check_readable(path)
        planner = {"parquet": _plan_parquet, "csv": _plan_delimited, "tsv": _plan_delimited,
                   "jsonl": _plan_lines, "text": _plan_lines, "webdataset": _plan_webdataset}[fmt]
        base = dict(format=fmt, source=str(path.resolve()), id_prefix=prefixes.get(location, path.name),
                    identity=tuple(sorted(file_identity(path).items())), text_column=text_column,
                    id_column=id_column)
        slices.extend(planner(path, base, shard_rows))
    return slices


def source_fingerprints(slices: Sequence[CaptionSlice]) -> list[dict]:
    """One record per input (format, identity, columns, shards, planned rows) for provenance.

    ``rows_planned`` is null for webdataset tars, whose samples are only known by reading them.
    """
    sources: dict[tuple, dict] = {}
    for piece in slices:
        record = sources.setdefault(
            (piece.format, piece.source, piece.split),
            {"format": piece.format, "source": piece.source, "split": piece.split, "identity": dict(piece.identity),
             "text_column": piece.text_column, "id_column": piece.id_column, "shards": 0, "rows_planned": 0},
        )
        record["shards"] += 1
        if piece.stop is None or record["rows_planned"] is None:
            record["rows_planned"] = None
        else:
            record["rows_planned"] += piece.stop - piece.start
    return list(sources.values())


def _file_format(path: Path) -> tuple[str, str]:
    suffix = path.suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise CaptionInputError(
            f"{path}: unknown caption file type {suffix or '(none)'}; use "
            f"{', '.join(sorted(SUFFIX_FORMATS))}, a save_to_disk folder or hf:<dataset>"
        )
    return SUFFIX_FORMATS[suffix], str(path)


def _directory_sources(path: Path) -> list[tuple[str, str]]:
    """A ``save_to_disk`` folder is one dataset; any other folder, its caption files (hidden ones skipped)."""
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return [("hf-disk", str(path))]
    files = sorted(
        p for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not files:
        raise CaptionInputError(f"{path}: folder holds no caption files ({', '.join(sorted(FOLDER_SUFFIXES))})")
    return [_file_format(p) for p in files]


def _id_prefixes(locations: list[str]) -> dict[str, str]:
    """Default sample ids are ``<file>:<row>``; files are named relative to their common folder."""
    if not locations:
        return {}
    resolved = [Path(location).resolve() for location in locations]
    root = Path(os.path.commonpath([p.parent for p in resolved]))
    return {location: p.relative_to(root).as_posix() for location, p in zip(locations, resolved)}


def _check_readable(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as error:
        raise CaptionInputError(f"{path}: cannot read the file ({error.strerror}); check its permissions") from None


def _row_ranges(total: int, shard_rows: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard_rows, total)) for start in range(0, total, shard_rows)]


def _row_group_ranges(group_rows: Sequence[int], shard_rows: int) -> list[tuple[int, int]]:
    """Row ranges of at most ``shard_rows`` rows made of whole row groups.

    Why whole groups: a reader decodes a row group's pages from its start, so a shard that
    ended inside a group would make the next shard decode that group again. A group longer than
    ``shard_rows`` is split into plain row ranges (each decodes the group up to its rows).
    """
    ranges: list[tuple[int, int]] = []
    start = end = 0
    for rows in group_rows:
        if rows > shard_rows:
            if end > start:
                ranges.append((start, end))
            ranges.extend((end + a, end + b) for a, b in _row_ranges(rows, shard_rows))
            start = end = end + rows
            continue
        if end + rows - start > shard_rows:
            ranges.append((start, end))
            start = end
        end += rows
    if end > start:
        ranges.append((start, end))
    return ranges


def _resolve_column(path: str, wanted: str | None, columns: Sequence[str], role: str) -> str | None:
    """The column to read for ``role``; a clear one-line error names the file and its columns."""
    available = ", ".join(map(str, columns)) or "none"
    if wanted is not None:
        if wanted not in columns:
            option = "--text-column" if role == "caption" else "--id-column"
            raise CaptionInputError(f"{path}: no column {wanted!r}; available columns: {available}; fix {option}")
        return wanted
    if role != "caption":
        return None
    for candidate in TEXT_COLUMN_CANDIDATES:
        if candidate in columns:
            return candidate
    lowered = {str(c).lower(): c for c in columns}
    for candidate in TEXT_COLUMN_CANDIDATES:
        if candidate.lower() in lowered:
            return lowered[candidate.lower()]
    raise CaptionInputError(f"{path}: no caption column found; available columns: {available}; pass --text-column")


def _plan_parquet(path: Path, base: dict, shard_rows: int) -> list[CaptionSlice]:
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as error:
        raise _read_error(path, error, "not a readable parquet file") from None
    names = parquet.schema_arrow.names
    text = _resolve_column(str(path), base["text_column"], names, "caption")
    ident = _resolve_column(str(path), base["id_column"], names, "id")
    base = dict(base, text_column=text, id_column=ident)
    groups = [parquet.metadata.row_group(index).num_rows for index in range(parquet.metadata.num_row_groups)]
    return [CaptionSlice(start=a, stop=b, **base) for a, b in _row_group_ranges(groups, shard_rows)]


def _plan_lines(path: Path, base: dict, shard_rows: int) -> list[CaptionSlice]:
    starts, rows, size = _record_starts(path, shard_rows, quoted=False, header=False)
    if base["format"] == "text":
        base = dict(base, text_column=None, id_column=None)
    else:
        base = _check_jsonl_columns(path, base)
    return _byte_slices(base, starts, rows, size, shard_rows)


def _plan_delimited(path: Path, base: dict, shard_rows: int) -> list[CaptionSlice]:
    quoted = base["format"] == "csv"
    starts, rows, size = _record_starts(path, shard_rows, quoted=quoted, header=True)
    if rows == 0:
        return []
    with open(path, "rb") as handle:
        header_bytes = handle.read(starts[0])
    try:
        header = pa_csv.read_csv(
            pa.py_buffer(header_bytes), read_options=pa_csv.ReadOptions(autogenerate_column_names=False),
            parse_options=_delimited_parse_options(base["format"]),
        ).column_names
    except (pa.ArrowException, ValueError) as error:
        raise _read_error(path, error, "cannot parse the header row") from None
    text = _resolve_column(str(path), base["text_column"], header, "caption")
    ident = _resolve_column(str(path), base["id_column"], header, "id")
    base = dict(base, text_column=text, id_column=ident, header=tuple(header))
    return _byte_slices(base, starts, rows, size, shard_rows)


def _plan_webdataset(path: Path, base: dict, shard_rows: int) -> list[CaptionSlice]:
    """A tar is one shard: its samples are only known by streaming it (and tars are already shards)."""
    return [CaptionSlice(start=0, stop=None, **dict(base, id_column=None))]


def _byte_slices(base: dict, starts: list[int], rows: int, size: int, shard_rows: int) -> list[CaptionSlice]:
    """Slices from the byte offsets of every ``shard_rows``-th data record."""
    slices = []
    for index, (start, stop) in enumerate(_row_ranges(rows, shard_rows)):
        byte_stop = starts[index + 1] if index + 1 < len(starts) else size
        slices.append(CaptionSlice(start=start, stop=stop, byte_start=starts[index], byte_stop=byte_stop, **base))
    return slices


def _record_starts(path: Path, every: int, quoted: bool, header: bool) -> tuple[list[int], int, int]:
    """Byte offsets where data records ``0, every, 2*every, ...`` start, the data record count, the size.

    One streaming pass with numpy. For quoted CSV a newline ends a record only when an even
    number of quote characters precede it (RFC 4180 escapes a quote by doubling it), so
    captions with line breaks inside quotes stay whole. With ``header`` the first record is
    the header: it is not a data record and ``starts[0]`` is where the data begins.
    """
    size = path.stat().st_size
    skip = 1 if header else 0
    starts: list[int] = [0] if not header else []
    ended = 0  # records ended by a newline so far
    last_end = -1
    parity = False
    offset = 0
    with open(path, "rb") as handle:
        while block := handle.read(_SCAN_BLOCK_BYTES):
            data = np.frombuffer(block, dtype=np.uint8)
            newline = data == 10
            if quoted:
                inside = np.bitwise_xor.accumulate(data == 34) ^ parity
                parity = bool(inside[-1])
                newline &= ~inside
            ends = np.flatnonzero(newline) + offset
            if len(ends):
                # The newline with overall index j starts record j + 1 (data record j + 1 - skip).
                index = ended + np.arange(len(ends))
                wanted = (index + 1 - skip >= 0) & ((index + 1 - skip) % every == 0)
                starts.extend((ends[wanted] + 1).tolist())
                ended += len(ends)
                last_end = int(ends[-1])
            offset += len(block)
    records = ended + (1 if last_end < size - 1 else 0)
    return [s for s in starts if s < size], max(records - skip, 0), size


def _check_jsonl_columns(path: Path, base: dict) -> dict:
    """Check the requested fields against the first JSON record, so a typo fails before any work."""
    with open(path, "rb") as handle:
        line = next((line for line in handle if line.strip()), b"")
    try:
        record = json.loads(line)
    except ValueError:
        return base  # an empty file, or a broken first line (counted as a skip when read)
    if not isinstance(record, dict):
        return base
    return dict(base, text_column=_resolve_column(str(path), base["text_column"], list(record), "caption"),
                id_column=_resolve_column(str(path), base["id_column"], list(record), "id"))


def _plan_hf(fmt: str, location: str, text_column: str | None, id_column: str | None, shard_rows: int):
    splits = _open_hf(fmt, location)
    slices = []
    for split, dataset in splits.items():
        where = f"{location} (split {split})"
        text = _resolve_column(where, text_column, dataset.column_names, "caption")
        ident = _resolve_column(where, id_column, dataset.column_names, "id")
        identity = tuple(sorted(
            (f["filename"], tuple(sorted(file_identity(f["filename"]).items()))) for f in dataset.cache_files
        ))
        name = Path(location).name if fmt == "hf-disk" else location
        for start, stop in _row_ranges(dataset.num_rows, shard_rows):
            slices.append(CaptionSlice(format=fmt, source=location, start=start, stop=stop, split=split,
                                       id_prefix=f"{name}/{split}", identity=identity, text_column=text,
                                       id_column=ident))
    return slices


@functools.lru_cache(maxsize=4)
def _open_hf(fmt: str, location: str) -> dict:
    """Split name -> ``datasets.Dataset`` (memory-mapped Arrow; cached per worker process)."""
    try:
        import datasets
    except ImportError:
        raise CaptionInputError(f"{location}: reading a Hugging Face dataset needs: pip install datasets") from None
    try:
        loaded = datasets.load_from_disk(location) if fmt == "hf-disk" else datasets.load_dataset(location)
    except Exception as error:  # noqa: BLE001 - datasets raises many types; all mean "cannot load"
        raise _read_error(Path(location), error, "cannot load the dataset") from None
    if isinstance(loaded, datasets.Dataset):
        return {"train": loaded}
    return dict(loaded)


# --- reading ----------------------------------------------------------------------------------

def read_caption_slice(piece: CaptionSlice, stats: ReadStats, batch_rows: int = BATCH_ROWS,
                       with_ids: bool = True) -> Iterator[pa.RecordBatch]:
    """Stream one slice as ``CAPTION_SCHEMA`` batches; bad rows keep their row with a null caption.

    With ``with_ids=False`` the ``sample_id`` column is all null (cheaper when only counting).
    """
    reader = {"parquet": _read_parquet, "csv": _read_delimited, "tsv": _read_delimited, "jsonl": _read_jsonl,
              "text": _read_text, "webdataset": _read_webdataset, "hf": _read_hf, "hf-disk": _read_hf}[piece.format]
    try:
        for first_row, captions, ids in reader(piece, stats, batch_rows):
            yield _batch(piece, stats, first_row, captions, ids, with_ids)
    except CaptionInputError:
        raise
    except (OSError, pa.ArrowException, tarfile.TarError, EOFError) as error:
        rows = f"rows {piece.start}-{piece.stop}" if piece.stop is not None else "the tar"
        raise _read_error(Path(piece.source), error, f"cannot read {rows}") from None


def _read_error(path: Path, error: BaseException, what: str) -> CaptionInputError:
    detail = " ".join(str(error).split()) or type(error).__name__
    return CaptionInputError(
        f"{path}: {what} ({detail[:300]}); fix or remove the file and rerun: finished shards are kept"
    )


def _batch(piece: CaptionSlice, stats: ReadStats, first_row: int, captions: pa.Array,
           ids: pa.Array | None = None, with_ids: bool = True) -> pa.RecordBatch:
    """Validate captions (UTF-8, null, blank), fill default ids, count rows and skips.

    ``with_ids=False`` leaves ``sample_id`` null: building millions of id strings is wasted
    work when only counts are wanted.
    """
    captions = _as_text(captions, stats)
    if captions.null_count > stats.nulls_counted:
        stats.skipped["null"] += captions.null_count - stats.nulls_counted
    stats.nulls_counted = 0
    # empty (length cast to false) or whitespace only; no Python scalar, see letitwag.arrow_buffers
    is_empty = pc.invert(pc.cast(pc.binary_length(captions), pa.bool_()))
    blank = pc.sum(pc.or_(is_empty, pc.utf8_is_space(captions))).as_py() or 0
    if blank:
        stats.skipped["empty"] += blank
    stats.rows += len(captions)
    if not with_ids:
        return pa.RecordBatch.from_arrays([pa.nulls(len(captions), pa.string()), captions], schema=CAPTION_SCHEMA)
    rows = primitive_array(np.arange(first_row, first_row + len(captions), dtype=np.int64))
    default_ids = pc.binary_join_element_wise(piece.id_prefix, pc.cast(rows, pa.string()), ":")
    if ids is None:
        sample_ids = default_ids
    else:
        ids = ids.cast(pa.string()) if not pa.types.is_binary(ids.type) else _as_text(ids, ReadStats())
        sample_ids = pc.coalesce(ids, default_ids)
    return pa.RecordBatch.from_arrays([sample_ids.cast(pa.string()), captions], schema=CAPTION_SCHEMA)


def _as_text(values: pa.Array, stats: ReadStats) -> pa.Array:
    """Strings from a string/binary column; undecodable values become null and are counted."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if pa.types.is_string(kind):
        return values
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return values.cast(pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        try:
            return values.cast(pa.string())
        except pa.ArrowInvalid:
            return _decode_row_by_row(values, stats)
    if pa.types.is_null(kind):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return values.cast(pa.string())
    raise CaptionInputError(f"caption column has type {kind}; point --text-column at a text column")


def _decode_row_by_row(values: pa.Array, stats: ReadStats) -> pa.Array:
    decoded = []
    for raw in values.to_pylist():
        if raw is None:
            decoded.append(None)
            continue
        try:
            decoded.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            decoded.append(None)
            stats.skip("invalid_utf8")
    return pa.array(decoded, pa.string())


def _read_parquet(piece: CaptionSlice, stats: ReadStats, batch_rows: int) -> Iterator[RawBatch]:
    parquet = pq.ParquetFile(piece.source)
    metadata = parquet.metadata
    groups, group_start, first = [], 0, None
    for index in range(metadata.num_row_groups):
        rows = metadata.row_group(index).num_rows
        if group_start < piece.stop and group_start + rows > piece.start:
            groups.append(index)
            first = group_start if first is None else first
        group_start += rows
    if not groups:
        return
    columns = [c for c in (piece.text_column, piece.id_column) if c]
    position = first
    # use_threads=False: each worker is one of a pool sized to the cores; threads only add overhead
    for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=groups, columns=columns, use_threads=False):
        lo, hi = max(piece.start - position, 0), min(piece.stop - position, batch.num_rows)
        if hi > lo:
            part = batch.slice(lo, hi - lo)
            ids = part.column(piece.id_column) if piece.id_column else None
            yield position + lo, part.column(piece.text_column), ids
        position += batch.num_rows
        if position >= piece.stop:
            return


def _delimited_parse_options(fmt: str, on_bad_row=None) -> pa_csv.ParseOptions:
    if fmt == "csv":
        return pa_csv.ParseOptions(delimiter=",", quote_char='"', newlines_in_values=True,
                                   invalid_row_handler=on_bad_row)
    return pa_csv.ParseOptions(delimiter="\t", quote_char=False, invalid_row_handler=on_bad_row)


def _read_delimited(piece: CaptionSlice, stats: ReadStats, batch_rows: int) -> Iterator[RawBatch]:
    def skip_bad_row(row) -> str:
        # A malformed row was read, then skipped: it counts in both, so rows = counted + skipped.
        stats.rows += 1
        stats.skipped["malformed_row"] += 1
        return "skip"

    columns = [c for c in (piece.text_column, piece.id_column) if c]
    with pa.memory_map(piece.source) as source:
        source.seek(piece.byte_start)
        data = source.read_buffer(piece.byte_stop - piece.byte_start)
        reader = pa_csv.open_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=list(piece.header), block_size=4 << 20, use_threads=False),
            parse_options=_delimited_parse_options(piece.format, skip_bad_row),
            convert_options=pa_csv.ConvertOptions(include_columns=columns,
                                                  column_types={c: pa.binary() for c in columns}),
        )
        row = piece.start
        for batch in reader:
            for offset in range(0, batch.num_rows, batch_rows):
                part = batch.slice(offset, batch_rows)
                ids = part.column(piece.id_column) if piece.id_column else None
                yield row, part.column(piece.text_column), ids
                row += part.num_rows


def _line_chunks(piece: CaptionSlice) -> Iterator[list[bytes]]:
    """The slice's lines (without ``\\n``), in chunks of about ``_LINE_CHUNK_BYTES``, from a memory map."""
    if piece.byte_stop == piece.byte_start:
        return
    with open(piece.source, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        position, stop = piece.byte_start, piece.byte_stop
        while position < stop:
            end = min(position + _LINE_CHUNK_BYTES, stop)
            if end < stop:
                newline = mapped.rfind(b"\n", position, end)
                if newline < 0:  # one line longer than a chunk
                    newline = mapped.find(b"\n", end, stop)
                end = stop if newline < 0 else newline + 1
            lines = mapped[position:end].split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            yield lines
            position = end


def _read_text(piece: CaptionSlice, stats: ReadStats, batch_rows: int) -> Iterator[RawBatch]:
    row = piece.start
    for lines in _line_chunks(piece):
        for offset in range(0, len(lines), batch_rows):
            part = lines[offset:offset + batch_rows]
            captions = _as_text(pa.array(part, pa.binary()), stats)
            captions = pc.utf8_rtrim(captions, characters="\r")
            yield row, captions, None
            row += len(part)


def _read_jsonl(piece: CaptionSlice, stats: ReadStats, batch_rows: int) -> Iterator[RawBatch]:
    row = piece.start
    for lines in _line_chunks(piece):
        for offset in range(0, len(lines), batch_rows):
            captions, ids = [], []
            for line in lines[offset:offset + batch_rows]:
                caption, sample_id = _parse_json_record(line, piece.text_column, piece.id_column, stats)
                captions.append(caption)
                ids.append(sample_id)
            id_array = pa.array(ids, pa.string()) if piece.id_column else None
            yield row, pa.array(captions, pa.string()), id_array
            row += len(captions)


def _parse_json_record(line: bytes, text_column: str | None, id_column: str | None,
                       stats: ReadStats) -> tuple[str | None, str | None]:
    """Caption and id of one JSON record; problems are counted skips. No ``text_column``: the usual names."""
    reason = None
    caption = sample_id = None
    try:
        record = json.loads(line) if line.strip() else None
    except UnicodeDecodeError:
        reason = "invalid_utf8"
    except ValueError:
        reason = "invalid_json"
    else:
        if record is None:
            reason = "empty"
        elif not isinstance(record, dict):
            reason = "invalid_json"
        else:
            field_name = text_column or next((c for c in TEXT_COLUMN_CANDIDATES if c in record), None)
            value = record.get(field_name)
            if field_name not in record:
                reason = "missing_field"
            elif value is not None and not isinstance(value, str):
                reason = "not_text"
            elif value is not None and not _encodable(value):
                reason = "invalid_utf8"  # a lone surrogate escape such as "\ud800"
            else:
                caption = value
            if id_column and record.get(id_column) is not None and _encodable(str(record[id_column])):
                sample_id = str(record[id_column])
    if reason:
        stats.skip(reason)
    return caption, sample_id


def _encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (JSON may escape lone surrogates, which UTF-8 cannot hold)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_webdataset(piece: CaptionSlice, stats: ReadStats, batch_rows: int) -> Iterator[RawBatch]:
    """Stream a tar (``r|*``: sequential, any compression), grouping members into samples by key.

    Nothing is extracted: only ``.txt``/``.json`` members are read, into memory, and only
    regular files; member names serve as sample ids (the webdataset key), never as paths.
    """
    keys: list[str] = []
    captions: list[str | None] = []
    current_key: str | None = None
    members: dict[str, bytes | None] = {}
    with tarfile.open(piece.source, mode="r|*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            directory, _, base = member.name.rpartition("/")
            stem, _, extension = base.partition(".")
            key = f"{directory}/{stem}" if directory else stem
            if key != current_key:
                if current_key is not None:
                    keys.append(current_key)
                    captions.append(_webdataset_caption(members, piece.text_column, stats))
                if len(keys) >= batch_rows:
                    yield 0, pa.array(captions, pa.string()), pa.array(keys, pa.string())
                    keys, captions = [], []
                current_key, members = key, {}
            extension = extension.lower()
            if extension in ("txt", "json"):
                too_big = member.size > _MAX_TAR_CAPTION_BYTES
                members[extension] = None if too_big else archive.extractfile(member).read()
    if current_key is not None:
        keys.append(current_key)
        captions.append(_webdataset_caption(members, piece.text_column, stats))
    if keys:
        yield 0, pa.array(captions, pa.string()), pa.array(keys, pa.string())


def _webdataset_caption(members: dict[str, bytes | None], text_column: str | None, stats: ReadStats) -> str | None:
    """A sample's caption: its ``.txt`` member, else the caption field of its ``.json`` member."""
    if members.get("txt") is not None:
        try:
            return members["txt"].decode("utf-8").strip()
        except UnicodeDecodeError:
            stats.skip("invalid_utf8")
            return None
    if members.get("json") is not None:
        return _parse_json_record(members["json"], text_column, None, stats)[0]
    stats.skip("oversized_member" if members else "no_caption_member")
    return None


def _read_hf(piece: CaptionSlice, stats: ReadStats, batch_rows: int) -> Iterator[RawBatch]:
    dataset = _open_hf(piece.format, piece.source)[piece.split]
    columns = [c for c in (piece.text_column, piece.id_column) if c]
    rows = dataset.select(range(piece.start, piece.stop)).select_columns(columns).with_format("arrow")
    position = piece.start
    for table in rows.iter(batch_size=batch_rows):
        ids = table.column(piece.id_column) if piece.id_column else None
        yield position, table.column(piece.text_column), ids
        position += table.num_rows
