"""Concept ids, names and match forms; bundled lists and paper tables load through one API."""

import json

import pytest

from letitwag.concepts import Concept, ConceptListError, bundled_concepts, load_concepts, normalize_text
from letitwag.tables import FrequencyTable, TableError, paper_table


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Acadian_Flycatcher", "acadian flycatcher"),
        ("eastern_hog-nosed_snake", "eastern hog nosed snake"),
        ('"A300B4"', "a300b4"),
        ("Dog's  BED!!", "dog s bed"),
        ("Café—Crème", "café crème"),
        ("  ", ""),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


def test_concept_keeps_released_id_and_derives_names():
    concept = Concept("Harriss_Hawk", aliases=("Harris's Hawk",))
    assert concept.id == "Harriss_Hawk"
    assert concept.name == "Harriss Hawk"
    assert concept.surface_forms() == ["harriss hawk", "harris s hawk"]


def test_bundled_lists():
    wag = bundled_concepts("let-it-wag")
    assert len(wag) == 290
    assert wag.get("Artic_Tern").aliases == ("Arctic Tern",)
    assert "eastern_hog-nosed_snake" in wag.ids
    assert len(bundled_concepts("imagenet")) == 1000
    assert len(bundled_concepts("all")) > 4000
    with pytest.raises(ConceptListError, match="unknown bundled concept list"):
        bundled_concepts("imagenet-1k")


def test_load_concepts_from_files(tmp_path):
    (tmp_path / "list.txt").write_text('"A300B4"\n"Acadian_Flycatcher"\n\n')
    assert load_concepts(tmp_path / "list.txt").ids == ["A300B4", "Acadian_Flycatcher"]
    (tmp_path / "list.json").write_text(json.dumps({"concepts": [{"id": "dog", "aliases": ["puppy"]}]}))
    assert load_concepts(tmp_path / "list.json")[0].aliases == ("puppy",)
    (tmp_path / "bad.json").write_text(json.dumps({"concepts": [{"name": "no id"}]}))
    with pytest.raises(ConceptListError, match=r"bad.json: concept 1 has no string 'id'"):
        load_concepts(tmp_path / "bad.json")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ConceptListError, match="empty"):
        load_concepts(tmp_path / "empty.txt")


def test_paper_table_round_trip(tmp_path):
    table = paper_table("laion400m", "matched")
    assert table.table.num_rows > 3000
    assert set(table.table["count_type"].to_pylist()) == {"integrated_tlemmatized_i0.7"}
    assert table.counts()["goldfish"] == 4537  # value as released in imagenet_laion400m_*_i0.7
    path = table.write(tmp_path / "t.parquet")
    again = FrequencyTable.read(path)
    assert again.table.equals(table.table)
    assert again.provenance["corpus"] == "laion400m"
    assert FrequencyTable.read("paper:cc3m:text").select(count_type="text").table.num_rows > 0
    with pytest.raises(TableError, match="corpora"):
        paper_table("webli")
    with pytest.raises(TableError, match="count types"):
        paper_table("laion400m", "rampp0.55")


def test_blank_released_concept_is_skipped():
    assert "" not in bundled_concepts("coco").ids
    assert "" not in paper_table("cc3m", "text").counts()
