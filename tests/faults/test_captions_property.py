"""Property: hostile caption files through the readers and ``count_text`` never crash, and every row is accounted for.

Random bytes, invalid UTF-8, NULs, surrogates, CR/LF mixes, huge lines, CSV quoting chaos and JSON
lines garbage, in every line-based format and as parquet (binary captions) or impostor files. Each
example either fails with one ``UserInputError`` line naming the file, or:

* the readers' rows equal the counted captions plus the skips by reason (nothing vanishes);
* for text and JSON lines, rows equal the file's lines (an independent count);
* ``count_text`` agrees with the readers (corpus size, skips) and counts no concept in more
  captions than were counted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fault_helpers import CONCEPT_IDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from letitwag.concepts import Concept, ConceptList
from letitwag.errors import UserInputError
from letitwag.frequency.count import count_text
from letitwag.frequency.text.readers import (
    ReadStats,
    plan_caption_slices,
    read_caption_slice,
)

CONCEPTS = ConceptList([Concept(c) for c in CONCEPT_IDS], name="faults")
HOSTILE = [b"\x00", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80abc", b'"', b'""', b'"a,"b"', b",", b"\t", b"\r",
           b"\\", b"\x1c", b"\xe2\x80\xa8", b"dog", b"hot dog", b"Dogs' CAT", b"  ", b"{", b"}", b"[1, 2]", b"null",
           b'{"caption": "a dog"}', b'{"caption": 5}', b'{"caption": null}', b'{"text": ["x"]}', b'{"id": 1}',
           b'{"caption": "\\ud800 dog"}', b"id,caption", b"<script>alert(1)</script>"]
HUGE_LINE = b"zebra " * 40_000  # 240 kB in one caption
FRAGMENT = st.one_of(st.sampled_from(HOSTILE), st.binary(max_size=12),
                     st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")))
LINE = st.lists(FRAGMENT, max_size=6).map(b"".join)


def _with_huge_line(lines: list[bytes], position: int | None) -> list[bytes]:
    return lines if position is None else [*lines[:position], HUGE_LINE, *lines[position:]]


LINES = st.builds(_with_huge_line, st.lists(LINE, max_size=25), st.one_of(st.none(), st.integers(0, 25)))
ENDING = st.sampled_from([b"\n", b"\r\n", b"\n\n"])


def file_bytes(lines: list[bytes], ending: bytes, trailing: bool) -> bytes:
    return ending.join(lines) + (ending if trailing and lines else b"")


def read_all(path: Path, shard_rows: int) -> tuple[int, int, dict]:
    """``(rows, counted captions, skips by reason)`` over every slice, straight from the readers."""
    rows, counted, skipped = 0, 0, {}
    for piece in plan_caption_slices([path], shard_rows=shard_rows):
        stats = ReadStats()
        for batch in read_caption_slice(piece, stats, batch_rows=7):
            captions = batch.column("caption")
            blank = pc.or_(pc.equal(pc.utf8_length(captions), 0), pc.utf8_is_space(captions))
            counted += int(pc.sum(pc.invert(blank)).as_py() or 0)
            assert batch.column("sample_id").null_count == 0
        rows += stats.rows
        for reason, n in stats.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
    return rows, counted, skipped


def check(path: Path, shard_rows: int, expected_rows: int | None = None) -> None:
    """The properties of the module docstring, for one file."""
    try:
        rows, counted, skipped = read_all(path, shard_rows)
    except UserInputError as error:
        message = str(error)
        assert "\n" not in message and path.name in message and len(message) < 1000, message
        return
    assert rows == counted + sum(skipped.values()), (rows, skipped)
    if expected_rows is not None:
        assert rows == expected_rows
    with tempfile.TemporaryDirectory() as out:
        table = count_text([path], CONCEPTS, out, shard_rows=shard_rows, workers=1, postings=True)
    provenance = table.provenance
    assert provenance["corpus_size"] == rows and provenance["captions_counted"] == counted
    assert provenance["skipped"] == dict(sorted((k, v) for k, v in skipped.items() if v))
    assert max(table.table.column("documents").to_pylist()) <= counted


def lines_in(data: bytes) -> int:
    """Rows of a text / JSON lines file: one per ``\\n``-terminated line, plus an unterminated last one."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.function_scoped_fixture])


@SETTINGS
@given(lines=LINES, ending=ENDING, trailing=st.booleans(), fmt=st.sampled_from(["txt", "jsonl"]),
       shard_rows=st.integers(1, 9))
def test_text_and_json_lines(lines, ending, trailing, fmt, shard_rows):
    data = file_bytes(lines, ending, trailing)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"captions.{fmt}"
        path.write_bytes(data)
        check(path, shard_rows, expected_rows=lines_in(data))


# pyarrow cannot hand a malformed row that is not UTF-8 to the skip handler: it warns ("Exception ignored")
# and fails the file, which the reader turns into one CaptionInputError line (checked in check()).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@SETTINGS
@given(lines=LINES, ending=ENDING, trailing=st.booleans(), fmt=st.sampled_from(["csv", "tsv"]),
       header=st.sampled_from([b"id,caption", b"caption", b"id\tcaption", b"", b'"caption","id"']),
       shard_rows=st.integers(1, 9))
def test_delimited(lines, ending, trailing, fmt, header, shard_rows):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"captions.{fmt}"
        path.write_bytes(file_bytes([header, *lines], ending, trailing))
        check(path, shard_rows)


@SETTINGS
@given(captions=st.lists(st.one_of(st.none(), LINE, st.just(HUGE_LINE)), max_size=30), shard_rows=st.integers(1, 9),
       kind=st.sampled_from(["binary", "string-or-null", "int"]))
def test_parquet_with_hostile_values(captions, shard_rows, kind):
    if kind == "binary":
        column = pa.array(captions, pa.binary())
    elif kind == "int":
        column = pa.array([len(c) if c is not None else None for c in captions], pa.int64())
    else:
        column = pa.array([c.decode("utf-8", "replace") if c is not None else None for c in captions], pa.string())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "captions.parquet"
        pq.write_table(pa.table({"caption": column}), path, row_group_size=4)
        check(path, shard_rows, expected_rows=len(captions))


@SETTINGS
@given(data=st.binary(max_size=600), suffix=st.sampled_from(["parquet", "tar", "csv", "jsonl", "txt", "tsv"]))
def test_random_bytes_in_any_format(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"captions.{suffix}"
        path.write_bytes(data)
        check(path, shard_rows=3)


def test_malformed_csv_rows_count_as_read(tmp_path):
    """Every row read is either counted or skipped: malformed CSV rows included."""
    path = tmp_path / "m.csv"
    path.write_bytes(b'id,caption\n1,a dog\n2,"a cat",extra\n3,zebra\n4\n')
    assert read_all(path, shard_rows=10) == (4, 2, {"malformed_row": 2})
    table = count_text([path], CONCEPTS, tmp_path / "out", workers=1)
    assert (table.provenance["corpus_size"], table.provenance["captions_counted"]) == (4, 2)
