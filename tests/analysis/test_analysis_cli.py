"""``letitwag analyze`` on user results: outputs, escaping, bad input, determinism."""

import csv
import json

import pytest

from letitwag import cli
from letitwag.analysis.plots import plot_performance_vs_frequency

PER_CLASS = {"Acadian_Flycatcher": 0.05, "A300B4": 0.2, "eastern_hog-nosed_snake": 0.35, "golden retriever": 0.9,
             "Harriss_Hawk": 0.1, "tench": 0.7, "plane": 0.95, "<script>alert(1)</script>": 0.5}


def _run(*argv):
    return cli.main(["--log-level", "WARNING", "analyze", *map(str, argv)])


def _analysis_without_timestamp(path):
    data = json.loads(path.read_text())
    data.pop("generated_at")
    return data


def test_results_against_a_table_writes_every_output(tmp_path, table_path, results_file, capsys):
    results = results_file(tmp_path / "run" / "results.json", PER_CLASS)
    out = tmp_path / "report"
    assert _run("--results", results, "--table", table_path, "--count-type", "text", "--rename", "plane=airplane",
                "--bootstrap", "200", "--out", out) == 0
    assert "1 fits" in capsys.readouterr().out
    analysis = json.loads((out / "analysis.json").read_text())
    (fit,) = analysis["fits"]
    assert fit["corpus"] == "toycorpus" and fit["count_type"] == "text" and fit["n_concepts"] == 7
    assert fit["binned"]["options"] == {"bins": 12, "edge_rule": "1,1", "position": "upper"}
    assert fit["regression"]["bootstrap"]["samples"] == 200
    assert fit["regression"]["slope_per_decade"] > 0
    assert analysis["summary_table"][0]["slope_per_decade"] == fit["regression"]["slope_per_decade"]
    (unjoined,) = analysis["join"]["unjoined"]
    assert unjoined["concept"] == "<script>alert(1)</script>"
    assert analysis["join"]["methods"]["rename"] == 1
    rows = list(csv.DictReader((out / "joined.csv").open()))
    assert len(rows) == 7 and {r["match"] for r in rows} == {"exact", "rename"}
    assert (out / "fits.csv").read_text().startswith('"id"')
    html = (out / "index.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for figure in analysis["figures"]:
        assert (out / figure["png"]).stat().st_size > 1000 and (out / figure["svg"]).exists()
    assert "let_it_wag_vs_imagenet" not in analysis


def test_same_inputs_give_identical_analysis_json(tmp_path, table_path, results_file):
    results = results_file(tmp_path / "results.json", PER_CLASS)
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert _run("--results", results, "--table", table_path, "--count-type", "image", "--bins", "5",
                    "--edge-rule", "sparse:1", "--bin-position", "centre", "--no-figures", "--out", out) == 0
        outputs.append(out / "analysis.json")
    first, second = (_analysis_without_timestamp(p) for p in outputs)
    assert first == second
    text = [p.read_text().splitlines() for p in outputs]
    differing = [a for a, b in zip(*text) if a != b]
    assert len(differing) <= 1 and all('"generated_at"' in line for line in differing)
    assert first["fits"][0]["binned"]["options"] == {"bins": 5, "edge_rule": "sparse:1", "position": "centre"}


def test_let_it_wag_results_are_overlaid_with_imagenet_accuracy(tmp_path, table_path, results_file):
    from letitwag.concepts import bundled_concepts

    wag_ids = [c.id for c in bundled_concepts("let-it-wag")]
    wag = results_file(tmp_path / "wag.json", {i: 0.4 for i in wag_ids}, dataset="bethgelab/Let-It-Wag", top1=0.4)
    inet = results_file(tmp_path / "inet.json", {"tench": 0.6}, dataset="imagenet-1k", top1=0.62)
    out = tmp_path / "r"
    assert _run("--results", wag, inet, "--table", table_path, "--count-type", "text", "--no-figures",
                "--bootstrap", "0", "--out", out) == 0
    analysis = json.loads((out / "analysis.json").read_text())
    (point,) = analysis["let_it_wag_vs_imagenet"]["overlay"]
    assert point["imagenet_top1"] == pytest.approx(62.0) and point["let_it_wag_top1"] == pytest.approx(40.0)
    assert analysis["let_it_wag_vs_imagenet"]["lines"]["below"]["slope"] == pytest.approx(0.6030346846828196)


@pytest.mark.parametrize("extra, message", [
    (["--count-type", "matched"], "count type 'matched' not in table"),
    (["--corpus", "laion"], "no corpus 'laion' in the table"),
    (["--edge-rule", "x"], "edge rule 'x'"),
])
def test_bad_options_fail_with_one_line(tmp_path, table_path, results_file, capsys, extra, message):
    results = results_file(tmp_path / "results.json", PER_CLASS)
    assert _run("--results", results, "--table", table_path, *extra, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_inputs_and_unusable_results(tmp_path, table_path, capsys):
    assert _run("--out", tmp_path / "o") == 2
    assert "nothing to analyse" in capsys.readouterr().err
    no_field = tmp_path / "results.json"
    no_field.write_text(json.dumps({"format": "letitwag.results/1", "metrics": {"top1": 0.3}}))
    assert _run("--results", no_field, "--table", table_path, "--out", tmp_path / "o") == 2
    assert "no per-concept field" in capsys.readouterr().err
    all_nan = tmp_path / "nan.csv"
    all_nan.write_text("concept,score\ntench,\n")
    assert _run("--results", all_nan, "--table", table_path, "--out", tmp_path / "o") == 2
    assert "has no usable score (1 excluded)" in capsys.readouterr().err
    assert _run("--results", all_nan, "--out", tmp_path / "o") == 2
    assert "--results needs --table" in capsys.readouterr().err


def test_plot_function_for_other_parts(tmp_path):
    rows = [{"count": c, "score": s} for c, s in [(0, 0.1), (5, 0.2), (50, 0.35), (500, 0.5), (5000, 0.6),
                                                   (50000, 0.8), (2, 0.15), (900, 0.55)]]
    paths = plot_performance_vs_frequency(rows, tmp_path / "model", title="m <b>", score_label="Accuracy",
                                          bootstrap=100)
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert b"<b>" not in paths[1].read_bytes()  # SVG text is XML-escaped by matplotlib


def test_tables_per_dataset_fits_retrieval_bins_and_corpus_from_model_name(tmp_path, table_path):
    import pyarrow as pa

    from letitwag.tables import FrequencyTable

    base = FrequencyTable.read(table_path).select(count_type="text")
    other = base.table.set_column(2, "corpus", pa.array(["othercorpus"] * base.table.num_rows))
    two = tmp_path / "two.parquet"
    FrequencyTable(pa.concat_tables([base.table, other]), {}).write(two)
    scores = tmp_path / "scores.csv"
    lines = ["model,pretrained,dataset,concept,score"]
    for dataset in ("coco", "flickr"):
        for concept, value in PER_CLASS.items():
            if not concept.startswith("<"):
                lines.append(f"m,othercorpus_e32,{dataset},{concept},{value}")
    scores.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r"
    assert _run("--results", scores, "--table", two, "--task", "retrieval", "--per-dataset", "--bootstrap", "0",
                "--out", out) == 0
    analysis = json.loads((out / "analysis.json").read_text())
    assert [f["dataset_scope"] for f in analysis["fits"]] == ["coco", "flickr"]
    assert all(f["corpus"] == "othercorpus" and f["binned"]["options"]["bins"] == 7 for f in analysis["fits"])
    assert analysis["fits"][0]["regression"]["slope_ci95"] == [None, None]  # --bootstrap 0: no interval
    # without a corpus hint in the model name the choice is refused, not guessed
    scores.write_text(scores.read_text().replace("othercorpus_e32", "x"))
    assert _run("--results", scores, "--table", two, "--out", tmp_path / "r2") == 2
