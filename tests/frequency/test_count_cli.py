"""``letitwag frequency count`` and ``show``: options reach the matcher, output, help, one-line errors."""

from __future__ import annotations

import argparse

import pyarrow.parquet as pq
import pytest

from letitwag import cli
from letitwag.concepts import ConceptList
from letitwag.errors import UserInputError
from letitwag.frequency.count import count_text
from letitwag.frequency.text.matcher import TextMatcher
from letitwag.frequency.text.readers import DEFAULT_SHARD_ROWS
from letitwag.tables import FrequencyTable

from .conftest import CORPUS, repeat_corpus, small_concepts, write_corpus

EXTRA = ["the dog that is hot", "Harris's Hawk on a post", "a hot dog and a dog"]


@pytest.fixture
def corpus_file(tmp_path):
    rows = CORPUS + [(f"x{i}", caption) for i, caption in enumerate(EXTRA)]
    return write_corpus(tmp_path / "in", "parquet", rows)


@pytest.fixture
def concepts_file(tmp_path, concepts):
    path = tmp_path / "concepts.json"
    concepts.write(path)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected_documents(concepts: ConceptList, **options) -> list[int]:
    captions = [caption for _, caption in CORPUS] + EXTRA
    return TextMatcher(concepts, **options).count(captions).documents.tolist()


def test_count_writes_the_table_and_prints_where_and_the_extremes(tmp_path, capsys, corpus_file, concepts_file):
    code, out, _ = run(capsys, "frequency", "count", "--captions", str(corpus_file), "--concepts",
                       str(concepts_file), "--out", str(tmp_path / "out"), "--workers", "1", "--corpus-name", "demo")
    assert code == 0
    assert f"wrote {tmp_path / 'out' / 'text.parquet'}: 6 concepts, {len(CORPUS) + 3} samples" in out
    assert "10 rarest:" in out and "10 most frequent:" in out
    table = FrequencyTable.read(tmp_path / "out" / "text.parquet")
    assert table.table.column("documents").to_pylist() == expected_documents(small_concepts())
    assert table.pairs() == [("demo", "text")]
    assert table.provenance["execution"]["computed"] == 1


@pytest.mark.parametrize(
    ("flags", "options"),
    [
        (["--mode", "bag"], {"mode": "bag"}),
        (["--longest-match"], {"longest_match": True}),
        (["--no-aliases"], {"use_aliases": False}),
    ],
)
def test_matching_options_reach_the_matcher(tmp_path, capsys, corpus_file, concepts_file, flags, options):
    code, _, _ = run(capsys, "frequency", "count", "--captions", str(corpus_file), "--concepts", str(concepts_file),
                     "--out", str(tmp_path / "out"), "--workers", "1", *flags)
    assert code == 0
    table = FrequencyTable.read(tmp_path / "out" / "text.parquet")
    documents = table.table.column("documents").to_pylist()
    assert documents == expected_documents(small_concepts(), **options)
    assert documents != expected_documents(small_concepts())  # the option changes something on these captions
    for key, value in options.items():
        assert table.provenance["parameters"][key] == value


def test_postings_and_id_column(tmp_path, capsys, concepts_file):
    path = write_corpus(tmp_path / "in", "jsonl")
    code, out, _ = run(capsys, "frequency", "count", "--captions", str(path), "--concepts", str(concepts_file),
                       "--out", str(tmp_path / "out"), "--id-column", "id", "--postings", "--workers", "1")
    assert code == 0 and "postings:" in out
    postings = pq.read_table(tmp_path / "out" / "text_postings.parquet")
    pairs = sorted(zip(postings["sample_id"].to_pylist(), postings["concept_id"].to_pylist()))
    hits = TextMatcher(small_concepts()).count([caption for _, caption in CORPUS])
    ids = small_concepts().ids
    expected = sorted((CORPUS[row][0], ids[concept]) for row, concept in zip(hits.hit_rows, hits.hit_concepts))
    assert pairs == expected
    assert ("s01", "dog") in pairs and ("s07", "hot_dog") in pairs


def test_a_process_pool_writes_the_same_bytes_as_one_process(tmp_path, concepts):
    paths = [write_corpus(tmp_path / "in", "parquet", repeat_corpus(2), name=f"p{i}") for i in range(3)]
    for workers in (1, 2):
        table = count_text(paths, concepts, tmp_path / f"w{workers}", shard_rows=10, workers=workers, postings=True)
        assert table.provenance["execution"] == {"shards": 9, "reused": 0, "computed": 9, "executor": "local",
                                                 "workers": workers}
    for name in ("text.parquet", "text_postings.parquet"):
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()


def test_show_rarest_most_frequent_and_one_concept(tmp_path, capsys, corpus_file, concepts):
    count_text([corpus_file], concepts, tmp_path / "out", workers=1)
    table = str(tmp_path / "out" / "text.parquet")
    code, out, _ = run(capsys, "frequency", "show", table, "--rarest", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:2] == ["concept_id", "corpus"] and len(lines) == 3
    assert lines[1].split()[0] == "Harriss_Hawk" or lines[1].split()[0] == "zebra"
    code, out, _ = run(capsys, "frequency", "show", table, "--most-frequent", "1")
    assert out.splitlines()[1].split()[0] == "dog"
    code, out, _ = run(capsys, "frequency", "show", table, "--concept", "Golden Retriever")
    assert out.splitlines()[1].split()[:4] == ["golden_retriever", "corpus", "text", "2"]


def test_show_reads_the_bundled_paper_tables(capsys):
    code, out, _ = run(capsys, "frequency", "show", "paper:laion400m:text", "--concept", "dog")
    assert code == 0
    row = out.splitlines()[1].split()
    expected = FrequencyTable.read("paper:laion400m:text").lookup("dog")
    assert row[0] == "dog" and int(row[3]) == expected.column("documents")[0].as_py()


def test_show_errors_are_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "frequency", "show", str(tmp_path / "missing.parquet"))
    assert code == 2 and err.count("\n") == 1 and "missing.parquet: no such frequency table" in err
    code, _, err = run(capsys, "frequency", "show", "paper:laion400m", "--concept", "no such thing at all")
    assert code == 2 and err.count("\n") == 1 and "no concept 'no such thing at all'" in err


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, corpus_file, concepts_file):
    code, _, err = run(capsys, "frequency", "count", "--captions", str(corpus_file), "--concepts", str(concepts_file),
                       "--out", str(tmp_path / "o"), "--text-column", "TEXT")
    assert code == 2 and err.count("\n") == 1
    assert "corpus.parquet: no column 'TEXT'; available columns: id, caption" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    code, _, err = run(capsys, "frequency", "count", "--captions", str(corpus_file), "--concepts", str(empty),
                       "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and "concept list is empty" in err
    with pytest.raises(UserInputError, match="the concept list is empty"):
        count_text([corpus_file], ConceptList([]), tmp_path / "o")


def test_help_explains_every_option_with_examples():
    parser = cli.build_parser()
    frequency = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["frequency"]
    commands = next(a for a in frequency._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in ("count", "show"):
        help_text = commands[name].format_help()
        assert "examples:" in help_text and f"letitwag frequency {name}" in help_text.split("examples:")[1]
        for action in commands[name]._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
            for option in action.option_strings:
                assert option in help_text
    shard_rows = next(a for a in commands["count"]._actions if "--shard-rows" in a.option_strings)
    assert f"default {DEFAULT_SHARD_ROWS:,}" in shard_rows.help  # the help names the library's default
