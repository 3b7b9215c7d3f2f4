"""The curation runner: candidates -> eight switchable steps -> curated manifest + report.

Why a chain of fingerprints: each step's record (``_work/steps/NN-<step>-<fp>.parquet``) is
named by a hash of the inputs, the concept list, the settings of this step and of every step
before it. A rerun after ``kill -9`` loads the records that exist and computes the rest; a
changed threshold changes its step's fingerprint and so re-runs that step and everything after
it. Outputs contain no dates or absolute paths, so the same inputs and seed give byte-identical
``curated.parquet`` and reports.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from letitwag import __version__
from letitwag.builders.curate import balance as balance_step
from letitwag.builders.curate import dedup
from letitwag.builders.curate.config import STEP_ORDER, CurateConfig
from letitwag.builders.curate.images import ImageLimits
from letitwag.builders.curate.report import write_report
from letitwag.builders.curate.steps import StepOutcome
from letitwag.builders.curate.validate import run_validation
from letitwag.builders.manifest import CANDIDATES_FILE, IMAGE_TYPE, read_candidate_rows, write_curated
from letitwag.concepts import ConceptList, Concept, load_concepts
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_with, file_sha256, text_sha256

LOGGER = logging.getLogger(__name__)

# Downstream lists whose classes are sub-species / models / breeds: the paper's "fine-grained" group.
FINE_GRAINED_LISTS = frozenset({"birdsnap", "cub", "fgvcaircraft", "stanfordcars", "flowers102", "oxfordpets", "food101"})


def concept_group(concept: Concept, membership: dict[str, set[str]]) -> str:
    """``fine-grained`` or ``common``: the concept's own ``group`` metadata wins, else its bundled lists."""
    if isinstance(concept.metadata.get("group"), str):
        return concept.metadata["group"]
    lists = membership.get(concept.id, set()) | ({concept.source} if concept.source else set())
    return "fine-grained" if lists & FINE_GRAINED_LISTS else "common"


def _membership() -> dict[str, set[str]]:
    from letitwag.data import read_bundled_table

    member: dict[str, set[str]] = {}
    for row in read_bundled_table("concept_lists.parquet").select(["downstream", "concept"]).to_pylist():
        member.setdefault(row["concept"], set()).add(row["downstream"])
    return member


def _chain(previous: str, step: str, settings: dict) -> str:
    return text_sha256(json.dumps([previous, step, settings], sort_keys=True, default=str))


class Curation:
    """One run over a candidate manifest; ``run()`` does the work and returns the report dict."""

    def __init__(self, candidates_dir: str | Path, out_dir: str | Path, config: CurateConfig,
                 serve_review_port: int | None = None) -> None:
        self.serve_review_port = serve_review_port
        self.candidates_dir = Path(candidates_dir)
        self.out_dir = Path(out_dir)
        self.config = config
        self.work_dir = self.out_dir / "_work"
        manifest = read_candidate_rows(self.candidates_dir)
        self.provenance_in = manifest.provenance
        self.frame = manifest.table.to_pandas()
        ids = sorted(set(self.frame["concept_id"]))
        self.concepts = load_concepts(config.concepts) if config.concepts else ConceptList((Concept(i) for i in ids), "candidates")
        self.frame["label"] = self.frame["concept_id"].map({c: i for i, c in enumerate(self.concepts.ids)})
        membership = _membership()
        groups = {c.id: concept_group(c, membership) for c in self.concepts}
        self.frame["group"] = self.frame["concept_id"].map(groups)
        for column in ("rejected_by", "reason", "duplicate_of"):
            self.frame[column] = pd.Series([None] * len(self.frame), dtype=object)
        self.fingerprint = text_sha256(json.dumps(
            [file_sha256(self.candidates_dir / CANDIDATES_FILE), self.concepts.ids], sort_keys=True))
        self.step_records: list[dict] = []
        self.warnings: list[str] = []
        self._embeddings = None

    @property
    def embeddings(self):
        """The run's embedding cache (the encoder loads on first use)."""
        if self._embeddings is None:
            from letitwag.builders.curate.embeddings import EmbeddingCache

            if not self.config.model:
                raise UserInputError("this step needs an embedding model: give --model SPEC")
            self._embeddings = EmbeddingCache(self.config.model, self.config.device, self.config.batch_size,
                                              self.config.chunk_size, self.out_dir, self.work_dir)
        return self._embeddings

    # -- steps ------------------------------------------------------------------------------
    def _alive(self) -> pd.DataFrame:
        return self.frame[self.frame["rejected_by"].isna()]

    def _apply(self, step: str, outcome: StepOutcome) -> None:
        """Mark the outcome's rejections in the frame, in one assignment per column (a per-row
        ``.at`` costs ~50 us in pandas: a second per 20,000 rejections)."""
        if outcome.rejected:
            rows = list(outcome.rejected)
            self.frame.loc[rows, "rejected_by"] = step
            self.frame.loc[rows, "reason"] = list(outcome.rejected.values())
        twins = {row: twin for row, twin in outcome.duplicate_of.items() if row in outcome.rejected}
        if twins:
            self.frame.loc[list(twins), "duplicate_of"] = list(twins.values())
        for name, values in outcome.scores.items():
            if name not in self.frame:
                self.frame[name] = np.nan
            self.frame.loc[list(values), name] = list(values.values())

    def _validate(self) -> None:
        settings = self.config.step_settings("validate")
        self.fingerprint = _chain(self.fingerprint, "validate", settings)
        limits = (ImageLimits(self.config.min_side, self.config.max_pixels) if self.config.validate
                  else ImageLimits(min_side=1, max_pixels=2**62))
        results = run_validation(
            self.candidates_dir / CANDIDATES_FILE, self.candidates_dir, self.out_dir,
            self.work_dir / f"validate-{self.fingerprint[:16]}", self.frame["candidate_id"].tolist(),
            limits, self.config.chunk_size, self.config.workers,
        ).to_pandas()
        if len(results) != len(self.frame):
            raise UserInputError(f"{self.work_dir}: validation records are incomplete; delete {self.work_dir} and rerun")
        results = results.set_index("row")
        for column in ("width", "height", "size_bytes", "sha256"):
            self.frame[column] = results[column].where(results[column].notna(), self.frame[column])
        for column in ("format", "pixel_sha256", "phash", "converted", "image_path"):
            self.frame[column] = results[column]
        outcome = StepOutcome()
        for row in self.frame.index[self.frame["label"].isna()]:
            outcome.reject(row, f"concept {self.frame.at[row, 'concept_id']!r} is not in the concept list")
        for row, reason in results["reason"].dropna().items():
            outcome.reject(row, reason)
        self._apply("validate", outcome)
        self.step_records.append({"step": "validate", "settings": settings, "input": len(self.frame),
                                  "rejected": len(outcome.rejected)})

    def _run_step(self, number: int, step: str) -> None:
        settings = self.config.step_settings(step)
        self.fingerprint = _chain(self.fingerprint, step, settings | self._extra_fingerprint(step))
        alive = self._alive()
        record = {"step": step, "settings": settings, "input": len(alive), "rejected": 0}
        if not settings["enabled"]:
            self.step_records.append(record)
            return
        path = self.work_dir / "steps" / f"{number:02d}-{step}-{self.fingerprint[:16]}.parquet"
        if path.exists():
            outcome = StepOutcome.from_table(pq.read_table(path))
            LOGGER.info("%s: reused finished record %s", step, path.name)
        else:
            outcome = self._compute(step, alive)
            table = outcome.to_table()
            atomic_write_with(path, lambda tmp: pq.write_table(table, tmp))
        self._apply(step, outcome)
        record["rejected"] = len(outcome.rejected)
        self.step_records.append(record)
        LOGGER.info("%s: %d of %d rejected", step, len(outcome.rejected), len(alive))
        warning = balance_step.dropped_every_concept(alive, outcome, self.config.per_class) if step == "balance" else None
        if warning:
            LOGGER.warning(warning)
            self.warnings.append(warning)

    def _extra_fingerprint(self, step: str) -> dict:
        if step == "review" and self.config.review_file and Path(self.config.review_file).exists():
            return {"decisions_sha256": file_sha256(self.config.review_file)}
        if step == "reference":
            return {"sets": [file_sha256(p) if Path(p).is_file() else p for p in self.config.reference]}
        return {}

    def _compute(self, step: str, alive: pd.DataFrame) -> StepOutcome:
        config = self.config
        if step == "exact_dedup":
            return dedup.exact_duplicates(alive)
        if step == "near_dedup":
            return dedup.near_duplicates(alive, config.near_distance)
        if step == "balance":
            return balance_step.balance(alive, config.per_class, config.seed, config.drop_short_classes)
        if step == "review":
            from letitwag.builders.curate.review import apply_review

            return apply_review(alive, Path(config.review_file))
        from letitwag.builders.curate.embedding_steps import run_embedding_step

        return run_embedding_step(step, alive, self)

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> dict:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._validate()
        for number, step in enumerate(STEP_ORDER[1:], start=2):
            if step == "review" and self.serve_review_port is not None and self.config.review_file:
                from letitwag.builders.curate.review import serve_review

                serve_review(self._alive(), self.out_dir, Path(self.config.review_file), self.serve_review_port)
            self._run_step(number, step)
        table = self._curated_table()
        provenance = {
            "letitwag": __version__,
            "candidates": os.path.relpath(self.candidates_dir, self.out_dir),
            "candidates_provenance": self.provenance_in,
            "fingerprint": self.fingerprint,
            "config": self.config.to_json(),
            "concepts": self.concepts.to_json(),
        }
        write_curated(self.out_dir, table, provenance)
        return write_report(self.out_dir, self.frame, self.concepts, self.step_records, self.config, self.warnings)

    def _curated_table(self) -> pa.Table:
        frame = self.frame.assign(kept=self.frame["rejected_by"].isna())
        frame = frame.sort_values(["label", "candidate_id"], kind="stable", na_position="last").reset_index(drop=True)
        images = pa.array([{"bytes": None, "path": p} for p in frame["image_path"]], IMAGE_TYPE)
        frame = frame.drop(columns=["image_path"])
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for name in ("outlier_score", "relevance"):
            if name not in table.column_names:
                table = table.append_column(name, pa.nulls(len(frame), pa.float32()))
        return table.append_column("image", images)


def curate(candidates_dir: str | Path, out_dir: str | Path, config: CurateConfig | None = None,
           serve_review_port: int | None = None) -> dict:
    """Curate a candidate manifest directory into ``out_dir``; returns the report as a dict.

    With ``serve_review_port`` the review page is served (127.0.0.1) before step 7 and the run
    waits for the person to finish.
    """
    return Curation(candidates_dir, out_dir, config or CurateConfig(), serve_review_port).run()
