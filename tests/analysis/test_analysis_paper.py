"""``letitwag analyze --paper``: every analysis of the paper on the bundled data, deterministic."""

import json

import pytest

from letitwag import cli


@pytest.fixture(scope="module")
def paper_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    assert cli.main(["--log-level", "WARNING", "analyze", "--paper", "--out", str(out)]) == 0
    return out, json.loads((out / "analysis.json").read_text())


def test_paper_fits_cover_models_tasks_and_controls(paper_report):
    _, analysis = paper_report
    fits = analysis["fits"]
    by_task = {}
    for fit in fits:
        by_task[fit["task"]] = by_task.get(fit["task"], 0) + 1
    # 12 (model, pretraining) pairs x 3 prompt sets; x 6 retrieval metrics; 24 T2I models x 2 human scores
    assert by_task == {"classification": 36, "retrieval": 72, "t2i": 48}
    assert len(analysis["summary_table"]) == 156
    imagenet_cc3m = next(f for f in fits if f["model"] == "backboneRN50_pretrainedcc3m"
                         and f["metric"] == "top1 (ensemble prompts)")
    assert imagenet_cc3m["count_type"] == "integrated_tlemmatized_i0.7" and imagenet_cc3m["n_concepts"] == 4469
    assert len(imagenet_cc3m["datasets"]) == 18 and "imagenet-r" not in imagenet_cc3m["datasets"]
    assert imagenet_cc3m["binned"]["options"]["bins"] == 12 and imagenet_cc3m["binned"]["kept"] == list(range(1, 11))
    assert imagenet_cc3m["binned"]["pearson_r"] > 0.9 and imagenet_cc3m["binned"]["p_value"] < 0.05
    laion = next(f for f in fits if f["corpus"] == "laion400m" and f["task"] == "classification")
    assert laion["binned"]["options"]["edge_rule"] == "2,1"
    controls = analysis["paper"]["controls"]
    assert {c["corpus"] for c in controls} == {"synthci30m", "laion200m_train_test_sim_normalized"}
    sim = next(f for f in fits if f["corpus"] == "laion200m_train_test_sim_normalized")
    assert sim["count_type"] == "rampp0.7"
    synth = next(f for f in fits if f["corpus"] == "synthci30m" and f["task"] == "classification")
    assert synth["binned"]["options"]["edge_rule"] == "0,4"
    t2i = next(f for f in fits if f["task"] == "t2i")
    assert t2i["corpus"] == "laion_aesthetics" and t2i["binned"]["options"] == {"bins": 7, "edge_rule": "3,0",
                                                                                   "position": "upper"}
    assert analysis["join"]["methods"]["rename"] == 36  # cifar10 plane -> airplane, as in the notebook
    not_analysed = analysis["paper"]["not_analysed"]
    assert len(not_analysed) == 9 and {m["pretraining"] for m in not_analysed} == {"laion2b", "datacomp"}


def test_paper_corpus_level_numbers(paper_report):
    _, analysis = paper_report
    lines = analysis["let_it_wag_vs_imagenet"]["lines"]
    assert lines["below"]["slope"] == pytest.approx(0.6030346846828196, abs=1e-9)  # notebook's print
    assert lines["above"]["slope"] == pytest.approx(1.5776268224701806, abs=1e-9)
    assert len(analysis["let_it_wag_vs_imagenet"]["points"]) == 40
    degrees = {m["corpus"]: m for m in analysis["paper"]["misalignment"]}
    assert all(m["matches_paper"] for m in degrees.values())
    assert degrees["yfcc15m"]["degree_percent"] == pytest.approx(36.4868, abs=1e-3)
    notebook = {(c["corpus_a"], c["corpus_b"]): c for c in analysis["paper"]["correlations"]["paper_notebook"]}
    assert notebook[("yfcc15m", "cc12m")]["spearman_rho"] == pytest.approx(0.9637908005672169, abs=1e-12)
    aligned = analysis["paper"]["correlations"]["concept_aligned"]
    assert all(-1 <= c["spearman_rho"] <= 1 and c["n_shared_concepts"] > 3000 for c in aligned)
    zipf = {(z["corpus"], z["count_type"]): z for z in analysis["paper"]["zipf"]}
    assert zipf[("cc3m", "matched")]["exponent"] > 0 and zipf[("laion200m_train_test_sim_normalized", "image")]


def test_paper_report_files(paper_report):
    out, analysis = paper_report
    assert len(analysis["figures"]) == 9  # 3 classification, 2 retrieval, 2 T2I, Zipf, Let it Wag!
    for figure in analysis["figures"]:
        assert (out / figure["png"]).stat().st_size > 5000 and (out / figure["svg"]).stat().st_size > 5000
    html = (out / "index.html").read_text()
    assert "paper_classification_ensemble.png" in html and "Misalignment degrees" in html
    assert (out / "joined.csv").read_text().count("\n") == analysis["join"]["n_joined"] + 1


def test_paper_analysis_json_is_deterministic(paper_report, tmp_path):
    out, analysis = paper_report
    assert cli.main(["--log-level", "WARNING", "analyze", "--paper", "--no-figures", "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "analysis.json").read_text())
    for data in (analysis, again):
        data.pop("generated_at")
        data.pop("figures")
        data["parameters"].pop("figures", None)
    assert again == analysis
