"""Matched counts and misalignment on hand-written postings whose answers are worked out by hand."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from letitwag.cli import main
from letitwag.concepts import Concept, ConceptList
from letitwag.errors import UserInputError
from letitwag.frequency.alignment import matched_table, misalignment
from letitwag.postings import write_postings
from letitwag.tables import FrequencyTable

# Captions (text side) and image tags (image side) of six samples:
#   s1: text {dog, cat}     image {dog}        -> aligned (dog)
#   s2: text {dog}          image {bird}       -> misaligned
#   s3: text {bird}         image {}           -> not a candidate (no image concept)
#   s4: text {}             image {cat}        -> not a candidate (no caption concept)
#   s5: text {cat}          image {cat, bird}  -> aligned (cat)
#   s6: text {hot_dog}      image {dog}        -> misaligned
TEXT = [("s1", "dog"), ("s1", "cat"), ("s2", "dog"), ("s3", "bird"), ("s5", "cat"), ("s6", "hot_dog")]
IMAGE = [("s1", "dog"), ("s2", "bird"), ("s4", "cat"), ("s5", "cat"), ("s5", "bird"), ("s6", "dog")]
# Matched by hand: dog text {s1, s2} ∩ image {s1, s6} = {s1}; cat {s1, s5} ∩ {s4, s5} = {s5};
# bird {s3} ∩ {s2, s5} = {}; hot_dog: never in an image.


def _postings(rows):
    return pa.table({"sample_id": [s for s, _ in rows], "concept_id": [c for _, c in rows]})


def _side(tmp_path, kind, rows, concepts=None, corpus_size=None):
    folder = tmp_path / kind
    write_postings(folder / f"{kind}_postings.parquet", _postings(rows))
    if concepts is not None:
        docs = [len({s for s, c in rows if c == concept}) for concept in concepts]
        FrequencyTable.from_counts(
            ConceptList(Concept(c) for c in concepts), docs, None, "toy", kind, corpus_size
        ).write(folder / f"{kind}.parquet")
    return folder


def test_matched_counts_intersect_sample_ids(tmp_path):
    text = _side(tmp_path, "text", TEXT, ["dog", "cat", "bird", "hot_dog"], corpus_size=10)
    image = _side(tmp_path, "image", IMAGE, ["dog", "cat", "bird", "hot_dog"], corpus_size=10)
    table = matched_table(text, image)
    assert table.counts() == {"dog": 1, "cat": 1, "bird": 0, "hot_dog": 0}
    assert set(table.table["count_type"].to_pylist()) == {"matched"}
    assert table.table["corpus_size"].to_pylist() == [10] * 4
    assert table.provenance["inputs"]["text"]["postings"].endswith("text_postings.parquet")
    assert "postings_sha256" in table.provenance["inputs"]["image"]


def test_concepts_missing_from_one_side_are_explicit(tmp_path):
    text = _side(tmp_path, "text", TEXT, ["dog", "cat", "bird", "hot_dog"])
    image = _side(tmp_path, "image", IMAGE, ["dog", "cat", "bird", "zebra"])
    table = matched_table(text, image)
    assert table.counts() == {"dog": 1, "cat": 1, "bird": 0, "hot_dog": 0, "zebra": 0}
    coverage = table.provenance["concept_coverage"]
    assert coverage["concepts_only_in_text"] == ["hot_dog"]
    assert coverage["concepts_only_in_image"] == ["zebra"]


def test_matched_with_a_concept_list_and_postings_files_only(tmp_path):
    text = tmp_path / "t.parquet"
    image = tmp_path / "i.parquet"
    write_postings(text, _postings(TEXT + [("s1", "dog")]))  # a duplicate row counts once
    write_postings(image, _postings(IMAGE))
    concepts = ConceptList([Concept("cat"), Concept("dog"), Concept("unicorn")])
    table = matched_table(text, image, concepts=concepts, corpus="mine")
    assert table.counts() == {"cat": 1, "dog": 1, "unicorn": 0}
    assert table.table["corpus"][0].as_py() == "mine"
    assert table.provenance["concept_coverage"]["concepts_in_list_missing_from_text"] == ["unicorn"]


def test_misalignment_follows_the_paper(tmp_path):
    text = _side(tmp_path, "text", TEXT, ["dog", "cat", "bird", "hot_dog"], corpus_size=8)
    image = _side(tmp_path, "image", IMAGE, ["dog", "cat", "bird", "hot_dog"], corpus_size=8)
    metrics = misalignment(text, image)
    assert metrics["samples_with_both"] == 4  # s1, s2, s5, s6
    assert metrics["aligned_samples"] == 2  # s1, s5
    assert metrics["misaligned_samples"] == 2  # s2, s6
    assert metrics["degree"] == pytest.approx(2 / 8)
    assert metrics["corpus_size"] == 8
    assert "text table" in metrics["corpus_size_source"]
    assert metrics["corpus_size_extracted"] == 5  # text has s1,s2,s3,s5,s6; image s1,s2,s4,s5,s6
    assert metrics["degree_extracted_size"] == pytest.approx(2 / 5)


def test_misalignment_only_compares_concepts_both_sides_searched(tmp_path):
    # The tagger never looked for hot_dog, so s6's caption concept cannot be matched, and
    # s6 (caption: only hot_dog) drops out of the candidates.
    text = _side(tmp_path, "text", TEXT, ["dog", "cat", "bird", "hot_dog"], corpus_size=8)
    image = _side(tmp_path, "image", IMAGE, ["dog", "cat", "bird"], corpus_size=8)
    metrics = misalignment(text, image)
    assert metrics["misaligned_samples"] == 1
    assert metrics["num_concepts"] == 3


def test_misalignment_corpus_size_must_be_known(tmp_path):
    text = tmp_path / "t.parquet"
    image = tmp_path / "i.parquet"
    write_postings(text, _postings(TEXT))
    write_postings(image, _postings(IMAGE))
    with pytest.raises(UserInputError, match="--corpus-size"):
        misalignment(text, image)
    metrics = misalignment(text, image, corpus_size=100)
    assert metrics["misaligned_samples"] == 2
    assert metrics["degree"] == pytest.approx(0.02)
    assert metrics["corpus_size_source"].startswith("given by the user")
    with pytest.raises(UserInputError, match="smaller than"):
        misalignment(text, image, corpus_size=3)


def test_cli_match_and_misalignment(tmp_path, capsys):
    text = _side(tmp_path, "text", TEXT, ["dog", "cat", "bird", "hot_dog"], corpus_size=8)
    image = _side(tmp_path, "image", IMAGE, ["dog", "cat", "bird", "hot_dog"], corpus_size=8)
    out = tmp_path / "joined"
    assert main(["frequency", "match", "--text", str(text), "--image", str(image), "--out", str(out)]) == 0
    assert FrequencyTable.read(out / "matched.parquet").counts()["dog"] == 1
    report = tmp_path / "mis.json"
    args = ["frequency", "misalignment", "--text", str(text), "--image", str(image), "--corpus-size", "20"]
    assert main([*args, "--out", str(report)]) == 0
    metrics = json.loads(report.read_text())
    assert metrics["format"] == "letitwag.misalignment/1"
    assert metrics["misaligned_samples"] == 2 and metrics["degree"] == pytest.approx(0.1)


def test_bad_postings_give_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"sample": ["a"], "concept_id": ["dog"]}), bad)
    good = tmp_path / "good.parquet"
    write_postings(good, _postings(IMAGE))
    assert main(["frequency", "match", "--text", str(bad), "--image", str(good), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert "bad.parquet" in error and "sample_id" in error and "\n" not in error
    assert main(["frequency", "match", "--text", str(tmp_path), "--image", str(good), "--out", str(tmp_path / "o")]) == 2
    assert "text_postings.parquet" in capsys.readouterr().err
