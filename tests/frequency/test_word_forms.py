"""Noun forms in the fast modes: hand-written captions for every kind of form, and the forms
checked against spaCy's own rule lemmatiser."""

from __future__ import annotations

import pytest

from letitwag.concepts import Concept, ConceptList, bundled_concepts
from letitwag.frequency.text.forms import english_lemmas, english_noun_forms, word_forms
from letitwag.frequency.text.matcher import TextMatcher

CONCEPTS = ConceptList([
    Concept("dog"), Concept("box"), Concept("church"), Concept("bus"),  # regular plurals of known nouns
    Concept("chickadee"), Concept("jetliner"), Concept("Affenpinscher"), Concept("Irish_Setter"),  # unknown nouns
    Concept("goose"), Concept("leaf"), Concept("mouse"), Concept("child"), Concept("wolf"),  # irregular
    Concept("running"), Concept("standing"), Concept("being"), Concept("leave"),  # gerunds, verb forms
    Concept("golden_retriever"), Concept("snow_goose"), Concept("retriever"),  # multi-word
])


def documents(captions, **options) -> dict[str, int]:
    result = TextMatcher(CONCEPTS, **options).count(captions)
    return {concept.id: int(count) for concept, count in zip(CONCEPTS, result.documents)}


@pytest.mark.parametrize("mode", ["phrase", "bag"])
def test_regular_plurals_of_known_and_unknown_nouns_count(mode):
    counts = documents(["two dogs", "boxes", "old churches", "school buses", "three chickadees at the feeder",
                        "jetliners at the gate", "two affenpinschers", "Irish setters"], mode=mode)
    for concept in ("dog", "box", "church", "bus", "chickadee", "jetliner", "Affenpinscher", "Irish_Setter"):
        assert counts[concept] == 1, concept


@pytest.mark.parametrize("mode", ["phrase", "bag"])
def test_irregular_plurals_count_and_leaves_now_count_for_leaf(mode):
    counts = documents(["geese", "autumn leaves", "mice", "children", "wolves"], mode=mode)
    assert [counts[c] for c in ("goose", "leaf", "mouse", "child", "wolf")] == [1, 1, 1, 1, 1]
    assert counts["leave"] == 0  # spaCy's noun lemmatiser reads "leaves" as "leaf", not "leave"


def test_possessives_count_through_normalisation():
    counts = documents(["the wolves' den", "children's toys", "a dog's bowl", "the geese's pond"])
    assert [counts[c] for c in ("wolf", "child", "dog", "goose")] == [1, 1, 1, 1]


def test_verb_and_adjective_forms_no_longer_count():
    captions = ["a man runs", "a dog stands on a rock", "it is what it is", "she leaves", "left"]
    counts = documents(captions)
    assert counts["running"] == counts["standing"] == counts["being"] == counts["leave"] == 0
    assert documents(["running", "a standing stone", "a human being", "on leave"]) == {
        **{c.id: 0 for c in CONCEPTS}, "running": 1, "standing": 1, "being": 1, "leave": 1}
    # the lookup table, on request, is part-of-speech blind: "is" -> "be" <- "being"
    lookup = documents(captions, forms=english_lemmas())
    assert (lookup["running"], lookup["standing"], lookup["being"], lookup["leave"]) == (1, 1, 1, 2)


def test_adjective_forms_count_only_with_the_lookup_table():
    concepts = ConceptList([Concept("white"), Concept("old")])
    captions = ["whiter than snow", "the oldest house", "whites and olds"]
    noun = TextMatcher(concepts).count(captions)
    assert noun.documents.tolist() == [1, 1]  # only the noun plurals "whites", "olds"
    lookup = TextMatcher(concepts, forms=english_lemmas()).count(captions)
    assert lookup.documents.tolist() == [2, 2]  # "whiter" -> "white", "oldest" -> "old"


def test_gerund_concepts_take_their_own_plural_only():
    assert documents(["runnings", "standings", "beings"]) == {
        **{c.id: 0 for c in CONCEPTS}, "running": 1, "standing": 1, "being": 1}


def test_phrase_inflects_the_last_word_and_bag_every_word():
    captions = ["golden retrievers", "goldens retriever", "snow geese", "geese in the snow"]
    phrase = TextMatcher(CONCEPTS).count(captions)
    hits = {(row, CONCEPTS[c].id) for row, c in zip(phrase.hit_rows.tolist(), phrase.hit_concepts.tolist())}
    assert hits == {(0, "golden_retriever"), (0, "retriever"), (2, "snow_goose"), (2, "goose"), (3, "goose"),
                    (1, "retriever")}
    bag = documents(captions, mode="bag")
    assert bag["golden_retriever"] == 2 and bag["snow_goose"] == 2


def test_longest_match_occurrences_and_postings_stay_consistent_with_plural_patterns():
    captions = ["golden retrievers and a retriever", "Golden Retriever's golden retrievers"]
    result = TextMatcher(CONCEPTS, longest_match=True).count(captions)
    by_id = {c.id: i for i, c in enumerate(CONCEPTS)}
    assert result.documents[by_id["golden_retriever"]] == 2 and result.occurrences[by_id["golden_retriever"]] == 3
    assert result.documents[by_id["retriever"]] == 1 and result.occurrences[by_id["retriever"]] == 1
    assert list(zip(result.hit_rows.tolist(), result.hit_concepts.tolist())) == [
        (0, by_id["golden_retriever"]), (0, by_id["retriever"]), (1, by_id["golden_retriever"])]


def test_forms_of_lists_exactly_what_the_noun_lemmatiser_maps_to_the_word():
    forms = english_noun_forms()
    assert forms.forms_of("chickadee") == ("chickadee", "chickadees")
    assert forms.forms_of("goose") == ("geese", "goose", "gooses")
    assert forms.forms_of("leaf") == ("leaf", "leafs", "leaves")
    assert "vases" not in forms.forms_of("vase")  # spaCy's rules read "vases" as "vas"; so do the forms
    assert forms.lemma("vases") == "vas"


def test_noun_forms_equal_spacys_rule_lemmatizer_on_bundled_concept_words():
    """Each form the matcher counts is lemmatised to the word by spaCy itself, and each candidate
    it leaves out (the inverted rules, the lookup table's forms) is lemmatised elsewhere."""
    import spacy
    from spacy.tokens import Doc

    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "rule"})
    nlp.initialize()
    forms, lookup = english_noun_forms(), english_lemmas()
    words = sorted({w for c in bundled_concepts("let-it-wag") for form in c.surface_forms() for w in form.split()})
    checked = 0
    for word in words:
        counted = set(forms.forms_of(word))
        candidates = counted | set(lookup.forms_of(lookup.lemma(word))) | {word + "s", word + "es", word[:-1] + "ies"}
        candidates.discard(word)
        doc = Doc(nlp.vocab, words=sorted(candidates), pos=["NOUN"] * len(candidates),
                  morphs=["Number=Plur"] * len(candidates))
        for token in nlp(doc):
            assert (token.lemma_ == word) == (token.text in counted), (word, token.text, token.lemma_)
            checked += 1
    assert checked > 1000


def test_pos_ambiguous_marks_words_a_tagger_may_not_read_as_nouns():
    forms = english_noun_forms()
    flagged = {text: forms.pos_ambiguous([text]) for text in (
        "golden retriever", "on", "running", "leaf", "white", "chickadee", "acadian flycatcher", "affenpinscher",
        "tench")}
    assert flagged == {"golden retriever": True, "on": True, "running": True, "leaf": True, "white": True,
                       "chickadee": False, "acadian flycatcher": False, "affenpinscher": False, "tench": False}
    assert forms.ambiguous_forms("leaf") == {"leaf": ["verb"], "leafs": ["verb"], "leaves": ["verb"]}


@pytest.mark.parametrize("mode", ["phrase", "bag"])
def test_a_plural_concept_word_counts_what_its_noun_lemma_counts_as_the_paper_read_it(mode):
    concepts = ConceptList([Concept("men"), Concept("man"), Concept("airplanes"), Concept("jeans"),
                            Concept("glass"), Concept("bus"), Concept("sports_car")])
    captions = ["a man", "two men", "an airplane", "airplanes", "blue jeans", "a glass", "glasses", "a bus",
                "sports cars", "a sport car"]
    counts = dict(zip(concepts.ids, TextMatcher(concepts, mode=mode).count(captions).documents.tolist()))
    assert counts["men"] == counts["man"] == 2  # men -> man: the noun exceptions
    assert counts["airplanes"] == 2 and counts["jeans"] == 1  # airplanes -> airplane, jeans -> jean: rules + index
    assert counts["glass"] == 2 and counts["bus"] == 1  # "glas", "bu" are no known noun: singular, as written
    # a phrase keeps its earlier words as written; bag reads every word through its lemma
    assert counts["sports_car"] == (1 if mode == "phrase" else 2)
    as_written = TextMatcher(concepts, mode=mode, forms=english_noun_forms("as-written")).count(captions).documents
    assert dict(zip(concepts.ids, as_written.tolist()))["men"] == 1


def test_concept_lemma_follows_the_noun_tables_only_where_they_know_the_lemma():
    forms = english_noun_forms()
    assert {word: forms.concept_lemma(word) for word in ("men", "children", "airplanes", "geese", "glass", "lens",
                                                          "octopus", "dog")} == {
        "men": "man", "children": "child", "airplanes": "airplane", "geese": "goose", "glass": "glass",
        "lens": "lens", "octopus": "octopus", "dog": "dog"}
    assert english_noun_forms("as-written").concept_lemma("men") == "men"
    assert forms.parameters["concept_words"] == "lemma"
    with pytest.raises(ValueError, match="as-written is for --forms noun"):
        word_forms("lookup", "as-written")


def test_stop_words_are_flagged_since_a_tagger_never_reads_them_as_nouns():
    forms = english_noun_forms()
    assert forms.ambiguous_forms("someone") == {"someone": ["stop word"]}
    assert forms.ambiguous_forms("her") == {"her": ["stop word"], "hers": ["stop word"]}
    assert forms.pos_ambiguous(["trinidad and tobago"]) and forms.pos_ambiguous(["bishop of llandaff"])
    assert not forms.pos_ambiguous(["trinidad"]) and not forms.pos_ambiguous(["airplanes"])


def test_the_bundled_stop_words_are_spacys():
    spacy_stop_words = pytest.importorskip("spacy.lang.en.stop_words").STOP_WORDS
    from letitwag.data import read_bundled_json
    from letitwag.frequency.text.forms import STOP_WORDS_FILE, is_token

    assert read_bundled_json(STOP_WORDS_FILE)["words"] == sorted(word for word in spacy_stop_words if is_token(word))


def test_text_tables_carry_the_flag_and_older_tables_read_with_nulls(tmp_path):
    import pyarrow.parquet as pq

    from letitwag.frequency.count import count_text
    from letitwag.tables import FrequencyTable

    (tmp_path / "captions.txt").write_text("three chickadees\nautumn leaves\n")
    concepts = ConceptList([Concept("chickadee"), Concept("leaf"), Concept("golden_retriever")])
    table = count_text([tmp_path / "captions.txt"], concepts, tmp_path / "out", workers=1)
    assert table.table.column("pos_ambiguous").to_pylist() == [False, True, True]
    assert table.table.column("documents").to_pylist() == [1, 1, 0]
    old = tmp_path / "old.parquet"
    pq.write_table(table.table.drop_columns(["pos_ambiguous"]), old)
    assert FrequencyTable.read(old).table.column("pos_ambiguous").to_pylist() == [None, None, None]
    paper = FrequencyTable.read("paper:cc3m:text").table.column("pos_ambiguous")
    assert paper.null_count == len(paper) > 3000


def test_show_forms_lists_what_counts_for_a_concept(tmp_path, capsys):
    from letitwag import cli

    (tmp_path / "captions.txt").write_text("snow geese\n")
    concepts = tmp_path / "concepts.txt"
    concepts.write_text("snow_goose\nleaf\n")
    out = tmp_path / "out"
    assert cli.main(["frequency", "count", "--captions", str(tmp_path / "captions.txt"), "--concepts", str(concepts),
                     "--out", str(out), "--workers", "1", "--mode", "bag"]) == 0
    capsys.readouterr()
    assert cli.main(["frequency", "show", str(out / "text.parquet"), "--concept", "snow goose", "--forms"]) == 0
    printed = capsys.readouterr().out
    assert "as this table was counted: noun forms" in printed
    assert "  bag (every word anywhere, each inflected):\n    {snow, snows} {geese, goose, gooses}\n" in printed
    assert "phrase (" not in printed
    assert "pos_ambiguous: a tagger may not read these as nouns: snow (verb); snows (verb); goose (verb)" in printed
    assert cli.main(["frequency", "show", str(out / "text.parquet"), "--forms"]) == 2


def test_show_forms_says_which_lemma_a_concept_word_is_read_through(tmp_path, capsys):
    from letitwag import cli

    (tmp_path / "captions.txt").write_text("two men\n")
    concepts = tmp_path / "concepts.txt"
    concepts.write_text("men\n")
    for option in ([], ["--concept-words", "as-written"]):
        out = tmp_path / f"out{len(option)}"
        assert cli.main(["frequency", "count", "--captions", str(tmp_path / "captions.txt"), "--concepts",
                         str(concepts), "--out", str(out), "--workers", "1", *option]) == 0
        capsys.readouterr()
        assert cli.main(["frequency", "show", str(out / "text.parquet"), "--concept", "men", "--forms"]) == 0
        printed = capsys.readouterr().out
        if option:
            assert "read through their noun lemma" not in printed and "    {men, mens}\n" in printed
        else:
            assert "read through their noun lemma (--concept-words lemma): men -> man\n" in printed
            assert "    {man, mans, men}\n" in printed


def test_concept_words_as_written_is_refused_where_it_has_no_meaning(tmp_path):
    from letitwag.errors import UserInputError
    from letitwag.frequency.count import count_text

    (tmp_path / "captions.txt").write_text("two men\n")
    concepts = ConceptList([Concept("men")])
    for options, message in (({"forms": "lookup"}, "is for --forms noun"), ({"mode": "paper"}, "for the fast modes"),
                             ({}, "unknown --concept-words")):
        value = "singular" if not options else "as-written"
        with pytest.raises(UserInputError, match=message):
            count_text([tmp_path / "captions.txt"], concepts, tmp_path / "out", workers=1, concept_words=value,
                       **options)
