"""Shared fixtures for the frequency tests: one hand-written caption corpus, written in every format."""

from __future__ import annotations

import csv
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from letitwag.concepts import Concept, ConceptList

# the slow reference counters and the synthetic caption generator live beside the benchmarks
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

# (sample id, caption): plurals, possessives, hyphens, case, unicode, multi-word, nulls and blanks.
CORPUS = [
    ("s00", "A dog on the beach"),
    ("s01", "Two dogs and a cat"),
    ("s02", "the dog's bowl, next to a hot dog stand"),
    ("s03", None),
    ("s04", ""),
    ("s05", "   "),
    ("s06", "Golden Retriever puppies playing"),
    ("s07", "a hot-dog with mustard"),
    ("s08", "Zebra crossing in Zürich — no zebras"),
    ("s09", "cats, CATS and more cats"),
    ("s10", "nothing to see here"),
    ("s11", "a golden retriever and a dog"),
]

FORMATS = ["parquet", "csv", "tsv", "jsonl", "text", "webdataset", "hf-disk"]


def small_concepts() -> ConceptList:
    return ConceptList(
        [Concept("dog"), Concept("hot_dog"), Concept("cat"), Concept("golden_retriever"), Concept("zebra"),
         Concept("Harriss_Hawk", aliases=("Harris's Hawk",))],
        name="small",
    )


@pytest.fixture
def concepts() -> ConceptList:
    return small_concepts()


def repeat_corpus(times: int) -> list[tuple[str, str | None]]:
    """The corpus repeated, with unique ids (``r<copy>-<id>``)."""
    return [(f"r{copy}-{sid}", caption) for copy in range(times) for sid, caption in CORPUS]


def write_corpus(directory: Path, fmt: str, rows=CORPUS, name: str = "corpus") -> Path:
    """Write ``rows`` as ``fmt``; returns the file (or folder) to pass as --captions.

    Text has no ids and writes null as an empty line; CSV/TSV write null as empty; the
    webdataset tar leaves null captions without a .txt member (an image-only sample).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ids = [sid for sid, _ in rows]
    captions = [caption for _, caption in rows]
    if fmt == "parquet":
        path = directory / f"{name}.parquet"
        pq.write_table(pa.table({"id": ids, "caption": captions}), path, row_group_size=5)
    elif fmt in ("csv", "tsv"):
        path = directory / f"{name}.{fmt}"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            if fmt == "csv":
                writer = csv.writer(handle)
                writer.writerow(["id", "caption"])
                writer.writerows([sid, caption or ""] for sid, caption in rows)
            else:
                handle.write("id\tcaption\n")
                handle.writelines(f"{sid}\t{caption or ''}\n" for sid, caption in rows)
    elif fmt == "jsonl":
        path = directory / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps({"id": sid, "caption": caption}) + "\n" for sid, caption in rows)
    elif fmt == "text":
        path = directory / f"{name}.txt"
        path.write_text("".join(f"{caption or ''}\n" for caption in captions), encoding="utf-8")
    elif fmt == "webdataset":
        path = directory / f"{name}.tar"
        with tarfile.open(path, "w") as archive:
            for index, (sid, caption) in enumerate(rows):
                add_member(archive, f"{sid}.jpg", b"\xff\xd8 not really a jpeg")
                if caption is None:
                    continue
                if index % 2:
                    add_member(archive, f"{sid}.txt", caption.encode("utf-8"))
                else:
                    add_member(archive, f"{sid}.json", json.dumps({"caption": caption, "width": 3}).encode())
    elif fmt == "hf-disk":
        import datasets

        path = directory / name
        datasets.Dataset.from_dict({"id": ids, "caption": captions}).save_to_disk(str(path))
    else:
        raise ValueError(fmt)
    return path


def add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def write_corrupt_parquet(path: Path, rows: int = 2000) -> Path:
    """A parquet whose footer reads fine but whose data page is garbage: fails only when rows are read."""
    captions = [f"a dog number {i} " * 3 for i in range(rows)]
    pq.write_table(pa.table({"caption": captions}), path, compression="zstd", use_dictionary=False)
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(0)
    data = bytearray(path.read_bytes())
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    data[middle:middle + 64] = b"\x00garbage" * 8
    path.write_bytes(bytes(data))
    return path


def invalid_utf8_array() -> pa.Array:
    """Two string rows: ``"dog café"`` and ``b"hot \\xff\\xfe dog \\xc3"``, bytes that are not UTF-8
    (Arrow does not validate buffers it is handed, so readers of odd files can produce this)."""
    good = "dog café".encode()
    bad = b"hot \xff\xfe dog \xc3"
    data = pa.py_buffer(good + bad)
    offsets = pa.py_buffer(np.array([0, len(good), len(good) + len(bad)], dtype=np.int32).tobytes())
    return pa.Array.from_buffers(pa.string(), 2, [None, offsets, data])
