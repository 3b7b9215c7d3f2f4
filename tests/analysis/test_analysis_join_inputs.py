"""Reading per-concept results and joining them with a table: nothing dropped silently."""

import json

import pytest

from letitwag.analysis.join import CountIndex, join_scores
from letitwag.analysis.results_io import ConceptScores, read_concept_scores
from letitwag.errors import UserInputError
from letitwag.tables import FrequencyTable


def _index(table_path, count_type="text"):
    return CountIndex.from_table(FrequencyTable.read(table_path).select(count_type=count_type))


def _scores(mapping):
    return ConceptScores("mem", "m", "d", "classification", "acc", "fraction", dict(mapping))


def test_join_order_exact_normalized_alias_rename_and_unjoined(table_path):
    index = _index(table_path)
    scores = _scores({
        "A300B4": 0.5,                          # exact id
        "acadian flycatcher": 0.1,              # normalised display name
        "Eastern Hog Nosed Snake": 0.2,         # normalised: hyphen/space/case
        "Arctic Tern": 0.3,                     # bundled alias of Artic_Tern
        "plane": 0.9,                           # explicit rename
        "unicorn": 0.4,                         # nowhere
    })
    result = join_scores(scores, index, {"plane": "airplane"})
    matched = {row["concept"]: (row["concept_id"], row["match"], row["count"]) for row in result.rows}
    assert matched["A300B4"] == ("A300B4", "exact", 3)
    assert matched["acadian flycatcher"] == ("Acadian_Flycatcher", "normalized", 0)
    assert matched["Eastern Hog Nosed Snake"] == ("eastern_hog-nosed_snake", "normalized", 40)
    assert matched["Arctic Tern"] == ("Artic_Tern", "alias", 15)
    assert matched["plane"] == ("airplane", "rename", 90000)
    assert result.methods == {"rename": 1, "exact": 1, "normalized": 2, "alias": 1}
    assert [u["concept"] for u in result.unjoined] == ["unicorn"]
    assert "no table concept" in result.unjoined[0]["reason"]
    assert len(result.rows) + len(result.unjoined) == len(scores.scores)


def test_rename_to_missing_id_and_ambiguous_forms_are_reported(table_path):
    index = _index(table_path)
    index.by_form["tench"].append("Tench_duplicate")
    result = join_scores(_scores({"TENCH!": 0.1, "x": 0.2}), index, {"x": "nope"})
    reasons = {u["concept"]: u["reason"] for u in result.unjoined}
    assert reasons["TENCH!"].startswith("ambiguous") and "Tench_duplicate" in reasons["TENCH!"]
    assert "'nope', which is not in the table" in reasons["x"]
    assert result.rows == []


def test_results_json_reading_and_nan_exclusion(tmp_path, results_file):
    path = results_file(tmp_path / "run" / "results.json", {"A300B4": 0.5, "tench": float("nan"), "airplane": None},
                        class_names=["A300B4", "tench", "airplane", "Harriss_Hawk"], top1=0.25)
    (scores,) = read_concept_scores(tmp_path / "run")  # a run directory works too
    assert scores.scores == {"A300B4": 0.5}
    assert scores.model == "open_clip:ViT-B-32/toycorpus_e1" and scores.unit == "fraction"
    assert scores.top1 == 25.0
    reasons = {e["concept"]: e["reason"] for e in scores.excluded}
    assert reasons["tench"] == "score is missing or NaN" and reasons["airplane"] == "score is missing or NaN"
    assert "not in metrics.per_class_accuracy" in reasons["Harriss_Hawk"]
    assert path.exists()


def test_results_without_per_concept_field_is_one_clear_error(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"format": "letitwag.results/1", "metrics": {"top1": 0.2, "per_class_recall": {"a": 1}}}))
    with pytest.raises(UserInputError) as error:
        read_concept_scores(path)
    message = str(error.value)
    assert str(path) in message and "no per-concept field metrics.per_class_accuracy" in message
    assert "per_class_recall" in message and "\n" not in message
    (scores,) = read_concept_scores(path, metric="per_class_recall")
    assert scores.scores == {"a": 1.0}


@pytest.mark.parametrize("content, expected", [
    ('{"format": "other/1"}', "not a letitwag results file"),
    ('{"format": "letitwag.results/2", "metrics": {}}', "newer than this tool"),
    ("[1, 2]", "expected a JSON object"),
    ("{oops", "not valid JSON"),
])
def test_bad_results_files(tmp_path, content, expected):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(UserInputError, match=expected):
        read_concept_scores(path)


def test_csv_tables_group_by_model_and_dataset_and_count_exclusions(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("model,dataset,concept,score\nm1,d1,tench,0.5\nm1,d1,A300B4,\nm2,d1,tench,0.7\nm1,d1,,0.1\n")
    groups = read_concept_scores(path, task="retrieval")
    assert [(g.model, g.dataset, g.task) for g in groups] == [("m1", "d1", "retrieval"), ("m2", "d1", "retrieval")]
    assert groups[0].scores == {"tench": 0.5}
    assert sorted(e["reason"] for e in groups[0].excluded) == ["row 5: empty concept", "score is missing or NaN"]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,value\nx,1\n")
    with pytest.raises(UserInputError, match="needs a concept column"):
        read_concept_scores(bad)
    duplicate = tmp_path / "dup.csv"
    duplicate.write_text("concept,score\nx,1\nx,2\n")
    with pytest.raises(UserInputError, match="row 3 repeats concept 'x'"):
        read_concept_scores(duplicate)
    text = tmp_path / "scores.txt"
    text.write_text("x")
    with pytest.raises(UserInputError, match="unknown results file type"):
        read_concept_scores(text)
    with pytest.raises(UserInputError, match="no such results file"):
        read_concept_scores(tmp_path / "missing.json")
