"""Compact the paper's released data into the parquet/JSON files bundled in ``letitwag/data``.

Why a script: the bundled files must be reproducible from the upstream release
(bethgelab/frequency_determines_performance, MIT), and nobody should have to trust
hand-edited data. This is a maintainer tool; the package never reads ``../shared``.

Usage::

    python tools/bundle_reference_data.py ../shared/reference/bethgelab letitwag/data
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 19, "use_dictionary": True}

SEARCH_COUNT_RE = re.compile(
    r"^(?P<downstream>[a-z0-9-]+?)_(?P<pretraining>cc3m|cc12m|yfcc15m|laion400m|synthci30m|"
    r"laion_aesthetics|laion200m_train_test_sim_normalized)_(?P<count_type>.+)_search_counts\.json$"
)
RETRIEVAL_RE = re.compile(r"^(?P<dataset>coco|flickr)_(?P<direction>i2t|t2i)_k=(?P<k>\d+)_results\.json$")
ZERO_SHOT_RE = re.compile(r"^(?P<dataset>.+)_(?P<prompt>class|simple|ensemble)_results\.json$")


def _write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, **PARQUET_OPTIONS)
    print(f"{path}: {table.num_rows} rows, {path.stat().st_size / 1024:.0f} KiB")


def bundle_frequencies(src: Path, out: Path) -> None:
    """All 783 search-count files as one long table, plus each downstream concept list in order."""
    rows: dict[str, list] = {"downstream": [], "concept": [], "pretraining": [], "count_type": [], "count": []}
    concept_order: dict[str, list[str]] = {}
    for path in sorted((src / "search_counts").glob("*.json")):
        match = SEARCH_COUNT_RE.match(path.name)
        if match is None:
            raise SystemExit(f"{path}: file name does not follow <downstream>_<pretraining>_<type>_search_counts.json")
        counts = json.loads(path.read_text())
        downstream = match["downstream"]
        for concept, count in counts.items():
            rows["downstream"].append(downstream)
            rows["concept"].append(concept)
            rows["pretraining"].append(match["pretraining"])
            rows["count_type"].append(match["count_type"])
            rows["count"].append(int(count))
        known = concept_order.setdefault(downstream, [])
        seen = set(known)
        known.extend(c for c in counts if c not in seen)
    table = pa.table(rows).cast(
        pa.schema(
            [
                ("downstream", pa.dictionary(pa.int16(), pa.string())),
                ("concept", pa.string()),
                ("pretraining", pa.dictionary(pa.int8(), pa.string())),
                ("count_type", pa.dictionary(pa.int8(), pa.string())),
                ("count", pa.int64()),
            ]
        )
    )
    _write(table, out / "paper_frequencies.parquet")
    lists = {"downstream": [], "position": [], "concept": []}
    for downstream, concepts in sorted(concept_order.items()):
        for position, concept in enumerate(concepts):
            lists["downstream"].append(downstream)
            lists["position"].append(position)
            lists["concept"].append(concept)
    _write(pa.table(lists), out / "concept_lists.parquet")


def bundle_zero_shot(src: Path, out: Path) -> None:
    """Per-class zero-shot accuracy (percent) of the 21 released models, 19 datasets x 3 prompt sets."""
    rows: dict[str, list] = {"dataset": [], "prompt": [], "model_key": [], "concept": [], "accuracy": []}
    for path in sorted((src / "zero_shot_evaluations").glob("*.json")):
        match = ZERO_SHOT_RE.match(path.name)
        if match is None:
            raise SystemExit(f"{path}: unexpected file name")
        for model_key, result in json.loads(path.read_text()).items():
            rows_for = [(None, result["full"])] + list(result["classwise"].items())
            for concept, accuracy in rows_for:
                rows["dataset"].append(match["dataset"])
                rows["prompt"].append(match["prompt"])
                rows["model_key"].append(model_key)
                rows["concept"].append(concept)
                rows["accuracy"].append(float(accuracy))
    _write(pa.table(rows), out / "paper_zero_shot.parquet")


def bundle_retrieval(src: Path, out: Path) -> None:
    """Per-concept recall@k (fraction) for COCO/Flickr image-to-text and text-to-image retrieval."""
    rows: dict[str, list] = {"dataset": [], "direction": [], "k": [], "model_key": [], "concept": [], "recall": []}
    for path in sorted((src / "retrieval_evaluations").glob("*.json")):
        match = RETRIEVAL_RE.match(path.name)
        if match is None:
            raise SystemExit(f"{path}: unexpected file name")
        for model_key, result in json.loads(path.read_text()).items():
            for concept, recall in [(None, result["full"])] + list(result["conceptwise"].items()):
                rows["dataset"].append(match["dataset"])
                rows["direction"].append(match["direction"])
                rows["k"].append(int(match["k"]))
                rows["model_key"].append(model_key)
                rows["concept"].append(concept)
                rows["recall"].append(float(recall))
    _write(pa.table(rows), out / "paper_retrieval.parquet")


def bundle_t2i(src: Path, out: Path) -> None:
    """Per-prompt T2I scores of the 24 HEIM models (the metric files present in the release)."""
    rows: dict[str, list] = {"metric": [], "model": [], "concept": [], "prompt_index": [], "score": []}
    for path in sorted((src / "t2i_evaluations").glob("t2i_*.json")):
        metric = path.stem.removeprefix("t2i_")
        for model, result in json.loads(path.read_text()).items():
            rows["metric"].append(metric)
            rows["model"].append(model)
            rows["concept"].append(None)
            rows["prompt_index"].append(None)
            rows["score"].append(float(result["full"]))
            for concept, scores in result["classwise"].items():
                for index, score in enumerate(scores):
                    rows["metric"].append(metric)
                    rows["model"].append(model)
                    rows["concept"].append(concept)
                    rows["prompt_index"].append(index)
                    rows["score"].append(float(score))
    _write(pa.table(rows), out / "paper_t2i.parquet")


def bundle_let_it_wag(src: Path, out: Path) -> None:
    """The 290 classes, the 40-model results (overall + per class) and the 80 ensemble templates."""
    classes = json.loads("[" + ",".join((src / "let_it_wag_datasets/let_it_wag_class_list.txt").read_text().split()) + "]")
    if len(classes) != 290:
        raise SystemExit(f"expected 290 Let it Wag! classes, got {len(classes)}")
    (out / "let_it_wag_classes.json").write_text(json.dumps(classes, indent=0) + "\n")

    results = json.loads((src / "let_it_wag_datasets/evaluations/let_it_wag_ensemble_results.json").read_text())
    imagenet = {}
    for line in (src / "_derived/let_it_wag_vs_imagenet_40_models.csv").read_text().splitlines()[1:]:
        key, backbone, pretraining, imagenet_acc, source, _ = line.split(",")
        imagenet[key] = (backbone, pretraining, float(imagenet_acc), source)
    models = {"model_key": [], "backbone": [], "pretraining": [], "imagenet_top1": [], "imagenet_source": [],
              "let_it_wag_top1": []}
    classwise = {"model_key": [], "concept": [], "accuracy": []}
    for key, result in results.items():
        backbone, pretraining, imagenet_acc, source = imagenet[key]
        models["model_key"].append(key)
        models["backbone"].append(backbone)
        models["pretraining"].append(pretraining)
        models["imagenet_top1"].append(imagenet_acc)
        models["imagenet_source"].append(source)
        models["let_it_wag_top1"].append(float(result["full"]))
        for concept, accuracy in result["classwise"].items():
            classwise["model_key"].append(key)
            classwise["concept"].append(concept)
            classwise["accuracy"].append(float(accuracy))
    _write(pa.table(models), out / "let_it_wag_40_models.parquet")
    _write(pa.table(classwise), out / "let_it_wag_40_models_classwise.parquet")

    ensemble = json.loads((src / "_derived/let_it_wag_ensemble_templates.json").read_text())["let_it_wag_combined"]
    templates = {"ensemble": ensemble, "simple": ["A photo of a {c}."], "class": ["{c}"]}
    (out / "templates.json").write_text(json.dumps(templates, indent=1) + "\n")


def bundle_misalignment(src: Path, out: Path) -> None:
    """Misalignment degrees and the corpus sizes they imply (counts / degree)."""
    corpora = {}
    for path in sorted((src / "misalignment_metrics").glob("*_misalignment_degree.json")):
        data = json.loads(path.read_text())
        misaligned = int(data["misalignment_counts"])
        fixed = float(data["misalignment_degree (percent); fixed conservative dataset size"])
        extracted = float(data["misalignment_degree (percent); extracted dataset size"])
        corpora[path.name.removesuffix("_misalignment_degree.json")] = {
            "misaligned_samples": misaligned,
            "degree_fixed_size": fixed,
            "degree_extracted_size": extracted,
            "corpus_size_fixed": round(misaligned / fixed),
            "corpus_size_extracted": round(misaligned / extracted),
        }
    (out / "paper_misalignment.json").write_text(json.dumps(corpora, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the bethgelab reference folder (with SOURCE.md)")
    parser.add_argument("out", type=Path, help="letitwag/data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bundle_frequencies(args.source, args.out)
    bundle_zero_shot(args.source, args.out)
    bundle_retrieval(args.source, args.out)
    bundle_t2i(args.source, args.out)
    bundle_let_it_wag(args.source, args.out)
    bundle_misalignment(args.source, args.out)


if __name__ == "__main__":
    main()
