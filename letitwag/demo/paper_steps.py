"""Demo steps 1 and 2: the paper's findings from the bundled data, and mining its rarest concepts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from letitwag.concepts import ConceptList

logger = logging.getLogger(__name__)

PAPER_TABLE = "paper:laion400m"
HEADLINE_METRIC = "top1 (ensemble prompts)"


@dataclass(frozen=True)
class PaperFindings:
    report: Path
    fits: int
    joined_rows: int
    headline: dict  # the paper's zero-shot classification fits (ensemble prompts), summarised


def analyze_paper(out: Path, bootstrap: int, figures: bool, seed: int) -> PaperFindings:
    """``letitwag analyze --paper``: every log-linear fit of the paper on the bundled results."""
    from letitwag.analysis.run import run_analysis

    analysis = run_analysis(out, paper=True, bootstrap=bootstrap, seed=seed, figures=figures)
    chosen = [fit for fit in analysis["fits"]
              if fit["role"] == "classification" and fit["metric"] == HEADLINE_METRIC]
    pearson = sorted(fit["binned"]["pearson_r"] for fit in chosen)
    slopes = sorted(fit["regression"]["slope_per_decade"] for fit in chosen)
    headline = {"metric": HEADLINE_METRIC, "fits": len(chosen), "corpora": sorted({fit["corpus"] for fit in chosen}),
                "binned_pearson_r": {"min": pearson[0], "median": median(pearson), "max": pearson[-1]},
                "slope_points_per_decade": {"min": slopes[0], "median": median(slopes), "max": slopes[-1]}}
    return PaperFindings(out / "index.html", len(analysis["fits"]), analysis["join"]["n_joined"], headline)


@dataclass(frozen=True)
class MinedConcepts:
    concepts: ConceptList
    file: Path
    counts: list[tuple[str, int]]  # (concept id, count), rarest first
    dropped_by: dict[str, int]
    table: dict


def mine_rarest(out_file: Path, k: int) -> MinedConcepts:
    """``letitwag mine --table paper:laion400m --exclude-zero --k K``: the rarest concepts with counts.

    Zero counts are excluded because they are mostly spelling mismatches between the downstream
    lists and the captions, not true rarity (see ``builders.mine``).
    """
    from letitwag.builders.mine import MiningCriteria, mine, result_document
    from letitwag.io import atomic_write_json
    from letitwag.tables import FrequencyTable

    result = mine(FrequencyTable.read(PAPER_TABLE), MiningCriteria(k=k, exclude_zero=True), table_name=PAPER_TABLE)
    document = result_document(result)
    atomic_write_json(out_file, document)
    counts = [(concept.id, concept.metadata["count"]) for concept in result.concepts]
    return MinedConcepts(result.concepts, out_file, counts, document["mining"]["dropped_by"], result.table_description)
