"""Caption readers: every format gives the same captions and counts; bad input is a skip or one clear line."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from letitwag.frequency.count import count_text
from letitwag.frequency.text import readers as caption_readers
from letitwag.frequency.text.matcher import TextMatcher
from letitwag.frequency.text.readers import (
    CaptionInputError,
    ReadStats,
    plan_caption_slices,
    read_caption_slice,
)
from letitwag.postings import read_postings

from .conftest import CORPUS, FORMATS, repeat_corpus, write_corpus


def read_all(inputs, **options) -> tuple[list[dict], ReadStats]:
    stats = ReadStats()
    rows = []
    for piece in plan_caption_slices(inputs, **options):
        for batch in read_caption_slice(piece, stats):
            rows.extend(batch.to_pylist())
    return rows, stats


def direct_counts(concepts, captions) -> np.ndarray:
    """Counts straight from the matcher, no reader or engine: the independent reference."""
    return TextMatcher(concepts).count(list(captions)).documents


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_counts_like_the_matcher_on_the_raw_captions(tmp_path, concepts, fmt):
    corpus = repeat_corpus(3)
    path = write_corpus(tmp_path / "in", fmt, corpus)
    table = count_text([path], concepts, tmp_path / "out", shard_rows=7, workers=1, postings=True)
    expected = direct_counts(concepts, [caption for _, caption in corpus])
    assert table.table.column("documents").to_pylist() == expected.tolist()
    assert expected.sum() > 0
    assert table.provenance["corpus_size"] == len(corpus)
    postings = read_postings(tmp_path / "out" / "text_postings.parquet")
    assert postings.num_rows == expected.sum()


def test_all_formats_give_the_same_captions_in_the_same_order(tmp_path):
    reference = [caption or "" for _, caption in CORPUS]
    for fmt in FORMATS:
        rows, stats = read_all([write_corpus(tmp_path / fmt, fmt)], shard_rows=5)
        captions = [(row["caption"] or "") for row in rows]
        if fmt == "webdataset":  # a sample whose caption is null has no .txt/.json member
            assert stats.skipped["no_caption_member"] == 1
        assert [c.strip() for c in captions] == [c.strip() for c in reference], fmt
        assert stats.rows == len(CORPUS)


def test_sample_ids_default_to_file_and_row_or_the_id_column(tmp_path):
    text = write_corpus(tmp_path, "text")
    rows, _ = read_all([text])
    assert [row["sample_id"] for row in rows[:2]] == ["corpus.txt:0", "corpus.txt:1"]
    parquet = write_corpus(tmp_path, "parquet")
    rows, _ = read_all([parquet], id_column="id")
    assert [row["sample_id"] for row in rows] == [sid for sid, _ in CORPUS]
    tar = write_corpus(tmp_path, "webdataset")
    rows, _ = read_all([tar])
    assert [row["sample_id"] for row in rows] == [sid for sid, _ in CORPUS]


def test_files_with_the_same_name_in_two_folders_get_distinct_ids(tmp_path):
    first = write_corpus(tmp_path / "a", "parquet")
    second = write_corpus(tmp_path / "b", "parquet")
    rows, _ = read_all([first, second])
    assert rows[0]["sample_id"] == "a/corpus.parquet:0"
    assert rows[len(CORPUS)]["sample_id"] == "b/corpus.parquet:0"


def test_five_files_are_split_into_row_range_shards_covering_every_row_once(tmp_path):
    paths = [write_corpus(tmp_path, "parquet", repeat_corpus(2), name=f"part-{i}") for i in range(5)]
    pieces = plan_caption_slices(paths, shard_rows=10)
    assert len(pieces) == 5 * 3  # 24 rows per file -> 10 + 10 + 4
    assert [(p.start, p.stop) for p in pieces[:3]] == [(0, 10), (10, 20), (20, 24)]
    rows, stats = read_all(paths, shard_rows=10)
    assert [row["caption"] for row in rows] == [c for _ in range(5) for _, c in repeat_corpus(2)]
    assert stats.rows == 5 * 24


@pytest.mark.parametrize("shard_rows, expected", [
    (8, [(0, 5), (5, 10), (10, 15), (15, 20), (20, 24)]),  # a group never straddles two shards
    (12, [(0, 10), (10, 20), (20, 24)]),
    (3, [(0, 3), (3, 5), (5, 8), (8, 10), (10, 13), (13, 15), (15, 18), (18, 20), (20, 23), (23, 24)]),
])
def test_parquet_shards_are_whole_row_groups_unless_a_group_is_longer(tmp_path, shard_rows, expected):
    path = write_corpus(tmp_path, "parquet", repeat_corpus(2))  # 24 rows in row groups of 5
    pieces = plan_caption_slices([path], shard_rows=shard_rows)
    assert [(p.start, p.stop) for p in pieces] == expected
    rows, _ = read_all([path], shard_rows=shard_rows)
    assert [row["caption"] for row in rows] == [c for _, c in repeat_corpus(2)]


@pytest.mark.parametrize("shard_rows", [1, 2, 3, 5])
def test_csv_shards_split_on_record_boundaries_even_inside_quotes(tmp_path, shard_rows):
    path = tmp_path / "quoted.csv"
    records = [["1", 'a "quoted" dog\nover two lines'], ["2", "plain cat"], ["3", 'comma, and\r\nCRLF "x"'],
               ["4", ""], ["5", "last\n\nrow"]]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "caption"])
        writer.writerows(records)
    expected = pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(newlines_in_values=True))
    rows, stats = read_all([path], shard_rows=shard_rows, id_column="id")
    assert [row["caption"] for row in rows] == expected.column("caption").to_pylist()
    assert [row["sample_id"] for row in rows] == [r[0] for r in records]
    assert stats.skipped == {"empty": 1}


@pytest.mark.parametrize("shard_rows", [1, 2, 4])
def test_text_and_jsonl_shards_keep_row_numbers(tmp_path, shard_rows):
    text = tmp_path / "lines.txt"
    text.write_bytes(b"dog\r\ncat\n\nhot dog\nno newline at the end")
    rows, stats = read_all([text], shard_rows=shard_rows)
    assert [row["caption"] for row in rows] == ["dog", "cat", "", "hot dog", "no newline at the end"]
    assert [row["sample_id"] for row in rows] == [f"lines.txt:{i}" for i in range(5)]
    assert stats.skipped == {"empty": 1}


def test_hf_disk_dataset_dict_counts_every_split(tmp_path, concepts):
    import datasets

    split = datasets.Dataset.from_dict({"caption": [c for _, c in CORPUS]})
    datasets.DatasetDict({"train": split, "test": split}).save_to_disk(str(tmp_path / "dd"))
    rows, stats = read_all([tmp_path / "dd"], shard_rows=5)
    assert len(rows) == 2 * len(CORPUS)
    assert rows[0]["sample_id"] == "dd/train:0"
    assert {row["sample_id"].split(":")[0] for row in rows} == {"dd/train", "dd/test"}


def test_hf_prefix_loads_a_hub_layout_folder_with_datasets(tmp_path, monkeypatch, concepts):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # keep ~/.cache clean
    caption_readers._open_hf.cache_clear()
    (tmp_path / "hub" / "data").mkdir(parents=True)
    shard = tmp_path / "hub" / "data" / "train-00000-of-00001.parquet"
    pq.write_table(pa.table({"text": [c for _, c in CORPUS]}), shard)
    table = count_text([f"hf:{tmp_path / 'hub'}"], concepts, tmp_path / "out", workers=1)
    assert table.table.column("documents").to_pylist() == direct_counts(concepts, [c for _, c in CORPUS]).tolist()
    assert table.provenance["inputs"][0]["split"] == "train"
    assert any((tmp_path / "cache").rglob("*.arrow"))


def test_webdataset_reads_txt_and_json_members_in_nested_folders_without_extracting(tmp_path):
    import tarfile

    from .conftest import add_member

    path = tmp_path / "nested.tar"
    with tarfile.open(path, "w") as archive:
        add_member(archive, "000/a.txt", b"a dog")
        add_member(archive, "000/a.jpg", b"jpeg")
        add_member(archive, "000/b.json", json.dumps({"text": "a cat"}).encode())
        add_member(archive, "000/c.jpg", b"only an image")
        add_member(archive, "../../escape.txt", b"a zebra")  # a name, never a path
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rows, stats = read_all([path])
    assert rows == [
        {"sample_id": "000/a", "caption": "a dog"},
        {"sample_id": "000/b", "caption": "a cat"},
        {"sample_id": "000/c", "caption": None},
        {"sample_id": "../../escape", "caption": "a zebra"},
    ]
    assert stats.skipped == {"no_caption_member": 1}
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_non_utf8_null_and_blank_captions_are_counted_skips_not_crashes(tmp_path, concepts):
    text = tmp_path / "bad.txt"
    text.write_bytes(b"a dog\n\xff\xfe broken cat\n\n   \na cat\n")
    csv_path = tmp_path / "bad.csv"
    csv_path.write_bytes(b"caption,id\na dog,1\n\xff broken,2\n,3\n\"a, cat\",4\nonly,too,many\n")
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_bytes(b'{"caption": "a dog"}\n{broken json\n{"caption": 7}\n{"other": "x"}\n\n{"caption": null}\n'
                      b'{"caption": "\\ud800 dog"}\n')  # a lone surrogate escape: valid JSON, not valid text
    table = count_text([text, csv_path, jsonl], concepts, tmp_path / "out", workers=1)
    provenance = table.provenance
    assert provenance["skipped"] == {"empty": 4, "invalid_utf8": 3, "invalid_json": 1, "malformed_row": 1,
                                     "missing_field": 1, "not_text": 1, "null": 1}
    counts = table.counts()
    assert counts["dog"] == 3 and counts["cat"] == 2
    assert provenance["corpus_size"] == 5 + 5 + 7


def test_a_one_megabyte_caption_is_counted(tmp_path, concepts):
    huge = "a dog " + "x" * (1 << 20) + " and a hot dog"
    path = tmp_path / "huge.parquet"
    pq.write_table(pa.table({"caption": [huge, "a cat"]}), path)
    text = tmp_path / "huge.txt"
    text.write_text(huge + "\na cat\n", encoding="utf-8")
    for source in (path, text):
        table = count_text([source], concepts, tmp_path / source.suffix, workers=1)
        counts = dict(zip(table.table["concept_id"].to_pylist(), table.table["occurrences"].to_pylist()))
        assert counts["dog"] == 2 and counts["hot_dog"] == 1 and counts["cat"] == 1


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "hf-disk"])
def test_wrong_column_name_is_one_line_naming_file_and_columns(tmp_path, fmt):
    path = write_corpus(tmp_path, fmt)
    with pytest.raises(CaptionInputError) as error:
        plan_caption_slices([path], text_column="captoin")
    message = str(error.value)
    assert "\n" not in message
    assert str(path.name) in message and "'captoin'" in message and "available columns: id, caption" in message


def test_missing_caption_column_lists_the_columns(tmp_path):
    path = tmp_path / "nocaption.parquet"
    pq.write_table(pa.table({"url": ["u"], "width": [1]}), path)
    with pytest.raises(CaptionInputError, match="no caption column found; available columns: url, width"):
        plan_caption_slices([path])


def test_unreadable_missing_and_unknown_inputs_are_clear_errors(tmp_path, monkeypatch):
    path = write_corpus(tmp_path, "parquet")
    os.chmod(path, 0)
    if os.access(path, os.R_OK):  # running as root: permissions do not stop us, so inject the refusal
        real_open = open

        def refusing_open(file, *args, **kwargs):
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(caption_readers, "open", refusing_open, raising=False)
    with pytest.raises(CaptionInputError, match=r"corpus\.parquet: cannot read the file \(Permission denied\)"):
        plan_caption_slices([path])
    os.chmod(path, 0o644)
    with pytest.raises(CaptionInputError, match="nope.parquet: no such caption file"):
        plan_caption_slices([tmp_path / "nope.parquet"])
    (tmp_path / "x.docx").write_bytes(b"?")
    with pytest.raises(CaptionInputError, match=r"x\.docx: unknown caption file type \.docx"):
        plan_caption_slices([tmp_path / "x.docx"])
    with pytest.raises(CaptionInputError, match="the pattern matches no file"):
        plan_caption_slices([str(tmp_path / "*.nothing")])


def test_a_folder_and_a_glob_expand_to_their_caption_files(tmp_path):
    write_corpus(tmp_path / "dir" / "sub", "parquet", name="b")
    write_corpus(tmp_path / "dir", "jsonl", name="a")
    (tmp_path / "dir" / "notes.md").write_text("ignored")
    rows, _ = read_all([tmp_path / "dir"])
    assert len(rows) == 2 * len(CORPUS)
    assert rows[0]["sample_id"] == "a.jsonl:0" and rows[-1]["sample_id"] == f"sub/b.parquet:{len(CORPUS) - 1}"
    rows, _ = read_all([str(tmp_path / "dir" / "**" / "*.parquet")])
    assert len(rows) == len(CORPUS)


def test_reading_without_ids_gives_the_same_captions_and_skips(tmp_path):
    path = write_corpus(tmp_path, "csv")
    with_ids, stats_with = read_all([path], shard_rows=5)
    without = ReadStats()
    rows = [row for piece in plan_caption_slices([path], shard_rows=5)
            for row in (b.to_pylist() for b in read_caption_slice(piece, without, with_ids=False)) for row in row]
    assert [r["caption"] for r in rows] == [r["caption"] for r in with_ids]
    assert {r["sample_id"] for r in rows} == {None}
    assert without.skipped == stats_with.skipped and without.rows == stats_with.rows


def test_empty_files_count_nothing_and_do_not_fail(tmp_path, concepts):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "header_only.csv").write_text("id,caption\n")
    (tmp_path / "empty.jsonl").write_bytes(b"")
    table = count_text([tmp_path / "empty.txt", tmp_path / "header_only.csv", tmp_path / "empty.jsonl"], concepts,
                       tmp_path / "out", postings=True, workers=1)
    assert table.provenance["corpus_size"] == 0 and table.provenance["execution"]["shards"] == 0
    assert set(table.table.column("documents").to_pylist()) == {0}
    assert read_postings(tmp_path / "out" / "text_postings.parquet").num_rows == 0


def test_a_folder_under_a_hidden_parent_is_still_read_and_json_metadata_is_ignored(tmp_path):
    folder = tmp_path / ".cache" / "corpus"
    write_corpus(folder, "parquet")
    (folder / "dataset_infos.json").write_text('{"default": {}}')
    rows, _ = read_all([folder])
    assert len(rows) == len(CORPUS)
