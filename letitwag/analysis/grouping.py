"""Turn joined per-concept rows into fit results, one per model x corpus x metric.

Like the paper, a fit pools every dataset of one model for one metric (the paper pools 18
classification datasets, or COCO and Flickr for retrieval) unless the caller asks for one
fit per dataset. Each result keeps its rows and bootstrap replicates for the plots, and
writes a flat JSON record with every parameter next to every number.
"""

from __future__ import annotations

from dataclasses import dataclass

from letitwag.analysis.fits import BinnedFit, BinningOptions, RegressionFit, binned_fit, regression_fit

GROUP_FIELDS = ("model", "corpus", "count_type", "task", "metric")


@dataclass
class FitResult:
    key: dict
    rows: list[dict]
    binned: BinnedFit
    regression: RegressionFit
    label: str = ""
    role: str = ""

    @property
    def fit_id(self) -> str:
        parts = [self.key[name] for name in GROUP_FIELDS]
        if self.key.get("dataset_scope") != "pooled":
            parts.append(self.key["dataset_scope"])
        return "|".join(parts)

    def record(self) -> dict:
        return {
            "id": self.fit_id,
            **self.key,
            "label": self.label or self.key["model"],
            "role": self.role,
            "datasets": sorted({row["dataset"] for row in self.rows}),
            "n_concepts": len(self.rows),
            "binned": self.binned.to_json(),
            "regression": self.regression.to_json(),
        }

    def summary_row(self) -> dict:
        """One flat row of the combined table (CSV and HTML)."""
        b, r = self.binned, self.regression
        return {
            "id": self.fit_id, "role": self.role, "model": self.key["model"], "corpus": self.key["corpus"],
            "count_type": self.key["count_type"], "task": self.key["task"], "metric": self.key["metric"],
            "datasets": self.key["dataset_scope"], "n_concepts": len(self.rows),
            "bins": b.options["bins"], "edge_rule": b.options["edge_rule"], "bin_position": b.options["position"],
            "bins_kept": len(b.kept), "binned_pearson_r": b.pearson_r, "binned_p": b.p_value,
            "binned_slope_per_decade": b.slope_per_decade,
            "slope_per_decade": r.slope_per_decade, "slope_ci95_low": r.slope_ci95[0],
            "slope_ci95_high": r.slope_ci95[1], "intercept": r.intercept, "pearson_r": r.pearson_r,
            "pearson_p": r.pearson_p, "spearman_rho": r.spearman_rho, "spearman_p": r.spearman_p,
        }


def group_rows(rows: list[dict], per_dataset: bool = False) -> dict[tuple, list[dict]]:
    """Rows grouped by model, corpus, count type, task, metric (and dataset), in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = tuple(row[name] for name in GROUP_FIELDS) + ((row["dataset"],) if per_dataset else ("pooled",))
        groups.setdefault(key, []).append(row)
    return groups


def fit_group(
    key: tuple,
    rows: list[dict],
    binning: BinningOptions,
    bootstrap: int,
    seed: int,
    unit: str = "",
    label: str = "",
    role: str = "",
) -> FitResult:
    """Both fits on one group of joined rows."""
    counts = [row["count"] for row in rows]
    scores = [row["score"] for row in rows]
    key_dict = dict(zip(GROUP_FIELDS + ("dataset_scope",), key))
    key_dict["unit"] = unit
    return FitResult(key_dict, rows, binned_fit(counts, scores, binning),
                     regression_fit(counts, scores, bootstrap, seed), label, role)
