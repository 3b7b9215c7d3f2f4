"""Mining: rarest-first under recorded criteria, deterministic ties, --explain, CLI errors."""

import json

import pytest

from letitwag.builders.mine import MiningCriteria, mine, result_document
from letitwag.cli import main
from letitwag.concepts import ConceptList, Concept, load_concepts
from letitwag.errors import UserInputError
from letitwag.tables import FrequencyTable


def _table(counts):
    concepts = ConceptList(Concept(c) for c in counts)
    return FrequencyTable.from_counts(concepts, counts.values(), None, "toy", "text", 100)


def test_rarest_first_with_id_ties_and_every_criterion():
    table = _table({"zebra": 0, "yak": 3, "apple": 3, "dog": 50, "cat": 7, "emu": 1, "goat": 200})
    criteria = MiningCriteria(k=3, exclude_zero=True, exclude=("emu",), max_count=100)
    result = mine(table, criteria)
    assert result.concepts.ids == ["apple", "yak", "cat"]  # 3,3 tie broken by id, then 7
    reasons = {c: (d.kept, d.criterion) for c, d in result.decisions.items()}
    assert reasons["zebra"] == (False, "zero")
    assert reasons["emu"] == (False, "excluded")
    assert reasons["goat"] == (False, "max_count")
    assert reasons["dog"] == (False, "k")
    assert result.concepts.get("apple").metadata["count"] == 3
    assert "rank 6 of 7" in result.explain("dog") and "DROPPED by criterion 'k'" in result.explain("dog")
    assert "KEPT" in result.explain("cat")
    document = result_document(result)
    assert document["mining"]["criteria"]["exclude"] == ["emu"]
    assert document["mining"]["dropped_by"] == {"excluded": 1, "k": 1, "max_count": 1, "zero": 1}


def test_min_candidates_needs_and_uses_a_manifest():
    table = _table({"a": 1, "b": 2, "c": 3})
    with pytest.raises(UserInputError, match="--min-candidates needs a candidate manifest"):
        mine(table, MiningCriteria(k=2, min_candidates=5))
    result = mine(table, MiningCriteria(k=2, min_candidates=5), candidate_counts={"a": 4, "b": 5, "c": 9})
    assert result.concepts.ids == ["b", "c"]
    assert result.decisions["a"].criterion == "candidates"


def test_paper_table_out_of_the_box_records_counts_in_every_corpus(tmp_path):
    out = tmp_path / "concepts.json"
    assert main(["mine", "--table", "paper:laion400m", "--k", "20", "--exclude-zero",
                 "--sources", "cub,birdsnap", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    concepts = load_concepts(out)
    assert len(concepts) == 20
    first = document["concepts"][0]
    assert first["metadata"]["counts"]["laion400m"] == first["metadata"]["count"] >= 1
    assert {"cc3m", "cc12m", "yfcc15m"} <= set(first["metadata"]["counts"])
    assert set(first["metadata"]["sources"]) & {"cub", "birdsnap"}
    counts = [c["metadata"]["count"] for c in document["concepts"]]
    assert counts == sorted(counts)
    again = tmp_path / "again.json"
    main(["mine", "--table", "paper:laion400m", "--k", "20", "--exclude-zero", "--sources", "cub,birdsnap",
          "--out", str(again)])
    assert again.read_bytes() == out.read_bytes()


def test_explain_and_bad_input_on_the_command_line(capsys):
    assert main(["mine", "--table", "paper:laion400m", "--exclude-zero", "--explain", "Harriss Hawk"]) == 0
    assert "DROPPED by criterion 'zero'" in capsys.readouterr().out
    assert main(["mine", "--table", "paper:laion400m", "--explain", "no such thing"]) == 2
    assert "not in the frequency table" in capsys.readouterr().err
    assert main(["mine", "--table", "paper:laion400m", "--sources", "nolist", "--out", "x.json"]) == 2
    assert "unknown bundled concept list" in capsys.readouterr().err
    assert main(["mine", "--table", "missing.parquet", "--out", "x.json"]) == 2
