"""The paper's frequency-vs-performance experiments, rebuilt from the bundled data.

Which model is compared with which table, and how, follows the released notebooks of
``bethgelab/frequency_determines_performance`` (commit 11ef009):

- Models: only the 12 (backbone, pretraining set) pairs in the notebooks' ``combinations``
  lists are analysed, each against the counts of *its own* pretraining set. The LAION-2B and
  DataComp models have zero-shot results but no frequency table, and the paper does not
  analyse them against a proxy; we list them as not analysed rather than invent a proxy.
- Counts: image-text matched (``integrated_tlemmatized_i0.7``), except the LAION-200M
  control whose only released table is RAM++ image counts (``rampp0.7``), as in the paper.
- Classification: 18 datasets pooled per model and prompt set (ImageNet-R is left out,
  as in the notebook), CIFAR-10's ``plane`` renamed to ``airplane`` (the notebook does so),
  12 bins; end bins dropped ``[1:-1]``, LAION-400M ``[2:-1]``, SynthCI-30M ``[0:-4]``.
- Retrieval: COCO and Flickr pooled per model and metric (i2t/t2i recall@1/5/10), 7 bins;
  the retrieval plotting notebook is absent from the stored snapshot, so we assume the
  classification rule ``[1:-1]`` and say so in the output.
- T2I: the 24 HEIM models against LAION-Aesthetics counts of the ``t2i`` concept list;
  per-concept mean over prompts, concepts with 5 prompts or fewer dropped, 7 bins, the
  last 4 bins kept (``[-4:]``). Only the human scores were released; the paper's main
  aesthetics and CLIP-score files are not in the snapshot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from letitwag.analysis.fits import BinningOptions, EdgeRule
from letitwag.analysis.results_io import ConceptScores
from letitwag.data import read_bundled_table

PAPER_COMBINATIONS = (
    ("RN50", "cc3m"), ("ViT-B-16", "cc3m"),
    ("RN50", "cc12m"), ("ViT-B-16", "cc12m"),
    ("RN50", "yfcc15m"), ("RN101", "yfcc15m"), ("ViT-B-16", "yfcc15m"),
    ("ViT-B-16", "synthci30m"),
    ("ViT-B-32", "laion200m_train_test_sim_normalized"),
    ("ViT-B-32", "laion400m"), ("ViT-B-16", "laion400m"), ("ViT-L-14", "laion400m"),
)
CONTROL_CORPORA = ("synthci30m", "laion200m_train_test_sim_normalized")
CLASSIFICATION_DATASETS = (
    "imagenet", "cifar10", "cifar100", "caltech101", "caltech256", "sun397", "birdsnap", "country211", "cub",
    "dtd", "eurosat", "fgvcaircraft", "flowers102", "food101", "imagenet-sketch", "oxfordpets", "stanfordcars",
    "ucf101",
)
RETRIEVAL_DATASETS = ("coco", "flickr")
PROMPT_SETS = ("class", "simple", "ensemble")
COUNT_TYPE = {"laion200m_train_test_sim_normalized": "image"}  # all others: matched
CLASSIFICATION_EDGES = {"laion400m": "2,1", "synthci30m": "0,4"}  # all others: 1,1
RETRIEVAL_EDGES = "1,1"  # assumed, see the module docstring
T2I_EDGES = "3,0"
T2I_CORPUS = "laion_aesthetics"
T2I_METRICS = ("human_aesthetics", "human_align")
T2I_MIN_PROMPTS = 6
RENAMES = {"cifar10": {"plane": "airplane"}}
MODEL_KEY = re.compile(r"^backbone(?P<backbone>.+?)_pretrained(?P<pretraining>.+)$")
CORPUS_NAMES = {"cc3m": "CC-3M", "cc12m": "CC-12M", "yfcc15m": "YFCC-15M", "laion400m": "LAION-400M",
                "synthci30m": "SynthCI-30M", "laion200m_train_test_sim_normalized": "LAION-200M (test-sim removed)",
                "laion_aesthetics": "LAION-Aesthetics"}


def parse_model_key(key: str) -> tuple[str, str]:
    """``backboneViT-B-16_pretrainedcc3m`` -> (``ViT-B-16``, ``cc3m``)."""
    match = MODEL_KEY.match(key)
    if not match:
        return key, ""
    return match["backbone"], match["pretraining"]


def model_key(backbone: str, pretraining: str) -> str:
    return f"backbone{backbone}_pretrained{pretraining}"


@dataclass
class PaperRun:
    """A batch of per-concept scores to join with one corpus/count type and fit one way."""

    task: str
    corpus: str
    count_type: str
    binning: BinningOptions
    scores: list[ConceptScores]
    role: str
    label: str
    renames: dict[str, dict[str, str]]


def _binning(bins: int, edges: str, position: str) -> BinningOptions:
    return BinningOptions(bins=bins, edges=EdgeRule.parse(edges), position=position)


def _classification_runs(position: str) -> list[PaperRun]:
    frame = read_bundled_table("paper_zero_shot.parquet").to_pandas()
    frame = frame[frame["concept"].notna() & frame["dataset"].isin(CLASSIFICATION_DATASETS)]
    grouped = {key: group for key, group in frame.groupby(["model_key", "prompt", "dataset"], sort=True)}
    runs = []
    for backbone, corpus in PAPER_COMBINATIONS:
        key = model_key(backbone, corpus)
        for prompt in PROMPT_SETS:
            scores = []
            for dataset in CLASSIFICATION_DATASETS:
                group = grouped.get((key, prompt, dataset))
                if group is None:
                    continue
                scores.append(_concept_scores(f"paper:zero_shot/{dataset}_{prompt}", key, dataset, "classification",
                                              f"top1 ({prompt} prompts)", "percent", group, "accuracy"))
            runs.append(PaperRun("classification", corpus, COUNT_TYPE.get(corpus, "matched"),
                                 _binning(12, CLASSIFICATION_EDGES.get(corpus, "1,1"), position), scores,
                                 "control" if corpus in CONTROL_CORPORA else "classification",
                                 backbone, RENAMES))
    return runs


def _concept_scores(source, key, dataset, task, metric, unit, group: pd.DataFrame, column: str) -> ConceptScores:
    scores: dict[str, float] = {}
    excluded = []
    for concept, value in zip(group["concept"].tolist(), group[column].tolist()):
        if not concept:
            excluded.append({"concept": concept, "reason": "empty concept name in the release"})
        elif pd.isna(value):
            excluded.append({"concept": concept, "reason": "score is missing or NaN"})
        else:
            scores[concept] = float(value)
    return ConceptScores(source, key, dataset, task, metric, unit, scores, excluded)


def _retrieval_runs(position: str) -> list[PaperRun]:
    frame = read_bundled_table("paper_retrieval.parquet").to_pandas()
    frame = frame[frame["concept"].notna()]
    grouped = {key: group for key, group in frame.groupby(["model_key", "direction", "k", "dataset"], sort=True)}
    runs = []
    for backbone, corpus in PAPER_COMBINATIONS:
        key = model_key(backbone, corpus)
        for direction in ("i2t", "t2i"):
            for k in (1, 5, 10):
                scores = [
                    _concept_scores(f"paper:retrieval/{dataset}_{direction}_k={k}", key, dataset, "retrieval",
                                    f"{direction} recall@{k}", "fraction", grouped[(key, direction, k, dataset)],
                                    "recall")
                    for dataset in RETRIEVAL_DATASETS if (key, direction, k, dataset) in grouped
                ]
                runs.append(PaperRun("retrieval", corpus, COUNT_TYPE.get(corpus, "matched"),
                                     _binning(7, RETRIEVAL_EDGES, position), scores,
                                     "control" if corpus in CONTROL_CORPORA else "retrieval", backbone, {}))
    return runs


def _t2i_runs(position: str) -> list[PaperRun]:
    frame = read_bundled_table("paper_t2i.parquet").to_pandas()
    frame = frame[frame["concept"].notna() & frame["metric"].isin(T2I_METRICS)]
    per_concept = frame.groupby(["metric", "model", "concept"], sort=True)["score"].agg(["mean", "size"]).reset_index()
    runs = []
    for (metric, model), group in per_concept.groupby(["metric", "model"], sort=True):
        scores = {}
        excluded = []
        for concept, mean, size in zip(group["concept"].tolist(), group["mean"].tolist(), group["size"].tolist()):
            if size < T2I_MIN_PROMPTS:
                excluded.append({"concept": concept,
                                 "reason": f"{size} prompt(s): the paper keeps concepts with more than 5"})
            else:
                scores[concept] = float(mean)
        result = ConceptScores(f"paper:t2i/{metric}", model, "t2i", "t2i", metric, "1-5 scale", scores, excluded)
        runs.append(PaperRun("t2i", T2I_CORPUS, "matched", _binning(7, T2I_EDGES, position), [result], "t2i",
                             model, {}))
    return runs


def paper_runs(position: str = "upper") -> list[PaperRun]:
    """Every fit of the paper's frequency analyses, in a stable order."""
    return _classification_runs(position) + _retrieval_runs(position) + _t2i_runs(position)


def not_analysed_models() -> list[dict]:
    """Zero-shot models of the release that the paper did not join with any frequency table."""
    keys = sorted(set(read_bundled_table("paper_zero_shot.parquet").column("model_key").to_pylist()))
    analysed = {model_key(b, c) for b, c in PAPER_COMBINATIONS}
    out = []
    for key in keys:
        if key not in analysed:
            backbone, pretraining = parse_model_key(key)
            out.append({"model": key, "backbone": backbone, "pretraining": pretraining,
                        "reason": f"no bundled frequency table for {pretraining!r}; the paper's notebooks do not "
                                  "analyse this model against any table, so neither do we"})
    return out


def method_notes() -> dict:
    """The choices above, as data for the report."""
    return {
        "models": [model_key(b, c) for b, c in PAPER_COMBINATIONS],
        "classification_datasets": list(CLASSIFICATION_DATASETS),
        "classification_edge_rules": {"default": "1,1", **CLASSIFICATION_EDGES},
        "retrieval_edge_rule": RETRIEVAL_EDGES + " (assumed: the retrieval plotting notebook is not in the snapshot)",
        "t2i_edge_rule": T2I_EDGES,
        "t2i_min_prompts": T2I_MIN_PROMPTS,
        "t2i_metrics": list(T2I_METRICS),
        "t2i_missing": "exp_aesthetics, exp_clip, max_aesthetics, max_clip (the paper's main T2I metrics) "
                       "were not released in the snapshot; only the human scores are analysed",
        "count_types": {"default": "matched (integrated_tlemmatized_i0.7)", **{k: v for k, v in COUNT_TYPE.items()}},
        "renames": RENAMES,
        "source": "bethgelab/frequency_determines_performance@11ef009 notebooks "
                  "(zero_shot_*, retrieval_*, t2i_*, correlations_between_pretraining_frequencies, "
                  "long-tailed-nature, let_it_wag_eval)",
    }
