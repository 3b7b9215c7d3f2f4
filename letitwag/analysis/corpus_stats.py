"""The paper's corpus-level analyses, recomputed from the bundled data.

- the long tail: rank-frequency power-law exponent of concept counts per pretraining set;
- how similar the concept distributions of two pretraining sets are (Spearman), computed
  twice: the way the paper's notebook did it, and aligned concept by concept;
- the image-text misalignment degrees, read back from the released metrics;
- Let it Wag! against ImageNet accuracy for the 40 released models, with two lines.

The notebook ``correlations_between_pretraining_frequencies.ipynb`` builds, per corpus, the
list of counts of every concept in the order of the sorted count files (first occurrence
kept), with CC-3M taken from the image-text (``integrated ... i0.7``) files and the other
corpora from the RAM++ image files (``rampp0.7``), then truncates the longer list and
correlates the two lists *position by position*. Positions only line up while both lists
hold the same files, so the concept-aligned numbers are the ones to trust; we report both.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pyarrow.compute as pc
from scipy import stats

from letitwag.analysis.fits import segmented_lines, zipf_fit
from letitwag.data import read_bundled_json, read_bundled_table
from letitwag.tables import PAPER_COUNT_TYPES, TableError, paper_table

# What the paper reports (text / Tab. 3 / Fig. 6) and, where different, what its notebook printed.
PAPER_MISALIGNMENT_PERCENT = {"cc3m": 16.81, "cc12m": 17.25, "yfcc15m": 36.48, "laion_aesthetics": 14.34,
                              "laion400m": 5.31}
PAPER_LIW_SLOPES = {"below": 0.60, "above": 1.58}
PAPER_NOTEBOOK_CORRELATIONS = {  # stats.spearmanr printed in the notebook
    ("yfcc15m", "cc12m"): 0.9637908005672169,
    ("cc3m", "cc12m"): 0.7924258926755035,
    ("laion400m", "yfcc15m"): 0.7644588019322125,
    ("laion400m", "cc3m"): 0.6282374756265174,
    ("laion400m", "cc12m"): 0.7353264196231468,
}
NOTEBOOK_COUNT_TYPE = {"cc3m": "integrated_tlemmatized_i0.7"}  # the others: rampp0.7
ZIPF_CORPORA = ("cc3m", "cc12m", "yfcc15m", "laion400m", "synthci30m", "laion_aesthetics",
                "laion200m_train_test_sim_normalized")
ALIGNED_CORPORA = ("cc3m", "cc12m", "yfcc15m", "laion400m", "synthci30m")


@functools.lru_cache(maxsize=None)
def corpus_counts(corpus: str, count_type: str) -> dict[str, int] | None:
    """concept id -> count of a bundled paper table, or None when the paper released none (cached: read-only)."""
    try:
        return paper_table(corpus, count_type).counts()
    except TableError:
        return None


def zipf_by_corpus() -> list[dict]:
    """A power-law fit per pretraining set and count type (text, image, matched)."""
    out = []
    for corpus in ZIPF_CORPORA:
        for kind in ("matched", "image", "text"):
            counts = corpus_counts(corpus, kind)
            if counts is None:
                continue
            out.append({"corpus": corpus, "count_type": kind, "raw_count_type": PAPER_COUNT_TYPES[kind],
                        **zipf_fit(list(counts.values()))})
    return out


def _notebook_sequence(corpus: str) -> list[int]:
    """Counts in the notebook's order: sorted file names, first occurrence of each concept."""
    raw_type = NOTEBOOK_COUNT_TYPE.get(corpus, "rampp0.7")
    table = read_bundled_table("paper_frequencies.parquet")
    mask = pc.and_(pc.equal(pc.cast(table["pretraining"], "string"), corpus),
                   pc.equal(pc.cast(table["count_type"], "string"), raw_type))
    rows = table.filter(mask)
    downstream = pc.cast(rows["downstream"], "string").to_pylist()
    concepts = rows["concept"].to_pylist()
    counts = rows["count"].to_pylist()
    by_file: dict[str, list[tuple[str, int]]] = {}
    for name, concept, count in zip(downstream, concepts, counts):
        by_file.setdefault(f"{name}_{corpus}_{raw_type}_search_counts.json", []).append((concept, count))
    seen: set[str] = set()
    sequence = []
    for file_name in sorted(by_file):
        for concept, count in by_file[file_name]:
            if concept not in seen:
                seen.add(concept)
                sequence.append(count)
    return sequence


def notebook_correlations() -> list[dict]:
    """The paper notebook's positional Spearman correlations, rerun on the bundled counts."""
    out = []
    for (a, b), printed in PAPER_NOTEBOOK_CORRELATIONS.items():
        left, right = _notebook_sequence(a), _notebook_sequence(b)
        n = min(len(left), len(right))
        rho = stats.spearmanr(left[:n], right[:n]).statistic
        out.append({"corpus_a": a, "corpus_b": b,
                    "count_type_a": NOTEBOOK_COUNT_TYPE.get(a, "rampp0.7"),
                    "count_type_b": NOTEBOOK_COUNT_TYPE.get(b, "rampp0.7"),
                    "n_a": len(left), "n_b": len(right), "n_used": n, "spearman_rho": float(rho),
                    "notebook_printed": printed,
                    "method": "paper notebook: per-corpus count lists in sorted-file order, longer list "
                              "truncated, correlated position by position"})
    return out


def aligned_correlations(count_type: str = "matched") -> list[dict]:
    """Spearman and Pearson (on log10(count + 1)) over the concepts both tables count."""
    tables = {c: corpus_counts(c, count_type) for c in ALIGNED_CORPORA}
    out = []
    for a, b in itertools.combinations(ALIGNED_CORPORA, 2):
        if tables[a] is None or tables[b] is None:
            continue
        shared = sorted(set(tables[a]) & set(tables[b]))
        x = np.array([tables[a][c] for c in shared], dtype=np.float64)
        y = np.array([tables[b][c] for c in shared], dtype=np.float64)
        rho = stats.spearmanr(x, y)
        r = stats.pearsonr(np.log10(x + 1), np.log10(y + 1))
        out.append({"corpus_a": a, "corpus_b": b, "count_type": count_type, "n_shared_concepts": len(shared),
                    "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue),
                    "pearson_r_log": float(r.statistic), "pearson_p_log": float(r.pvalue),
                    "method": "concepts aligned by id; Spearman on counts, Pearson on log10(count + 1)"})
    return out


def misalignment() -> list[dict]:
    """Misalignment degrees as released (fixed conservative corpus size, the paper's Tab. 3)."""
    metrics = read_bundled_json("paper_misalignment.json")
    out = []
    for corpus in sorted(metrics):
        info = metrics[corpus]
        degree = 100.0 * info["degree_fixed_size"]
        paper = PAPER_MISALIGNMENT_PERCENT.get(corpus)
        out.append({"corpus": corpus, "misaligned_samples": info["misaligned_samples"],
                    "corpus_size": info["corpus_size_fixed"], "degree_percent": degree,
                    "degree_percent_extracted_size": 100.0 * info["degree_extracted_size"],
                    "paper_percent": paper,
                    "matches_paper": paper is not None and abs(degree - paper) < 0.01})
    return out


def let_it_wag_vs_imagenet(threshold: float = 50.0) -> dict:
    """The 40 models of the paper's Tab. 9 and the two lines of its Fig. 6."""
    table = read_bundled_table("let_it_wag_40_models.parquet").to_pylist()
    points = [{"model": row["model_key"], "backbone": row["backbone"], "pretraining": row["pretraining"],
               "imagenet_top1": row["imagenet_top1"], "let_it_wag_top1": row["let_it_wag_top1"]}
              for row in sorted(table, key=lambda r: r["model_key"])]
    lines = segmented_lines([p["imagenet_top1"] for p in points], [p["let_it_wag_top1"] for p in points], threshold)
    lines["paper_slopes"] = PAPER_LIW_SLOPES
    return {"points": points, "lines": lines,
            "source": "bundled let_it_wag_40_models.parquet (ensemble prompts; paper Tab. 9)"}
