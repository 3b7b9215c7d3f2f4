"""Every switch and threshold of a curation run, in one frozen record written into the report.

Why one record: the curated dataset is only reproducible if the thresholds that shaped it are
stored with it; each step's resume fingerprint is computed from its part of this record, so a
changed threshold re-runs that step and every step after it, and nothing before it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from letitwag.errors import UserInputError

EXECUTION_KNOBS = ("workers", "chunk_size", "batch_size", "device")
STEP_ORDER = ("validate", "exact_dedup", "near_dedup", "reference", "outliers", "relevance", "review", "balance")


@dataclass(frozen=True)
class CurateConfig:
    """Switches (``<step>: bool``) and thresholds of the eight curation steps."""

    seed: int = 0
    workers: int = 2
    chunk_size: int = 1024
    concepts: str | None = None  # concept list spec; default: sorted concept ids of the candidates
    # 1 validate
    validate: bool = True
    min_side: int = 64
    max_pixels: int = 64_000_000
    # 2 exact duplicates
    exact_dedup: bool = True
    # 3 near duplicates within a concept
    near_dedup: bool = True
    near_distance: int = 10
    # 4 overlap with reference test sets
    reference: tuple[str, ...] = ()
    reference_distance: int = 10
    reference_cosine: float = 0.95
    # 5/6 model-based steps
    model: str | None = None
    device: str = "cpu"
    batch_size: int = 64
    outliers: bool = False
    outlier_fraction: float = 0.05
    relevance: bool = False
    relevance_threshold: float = 0.2
    prompts: str = "simple"
    # 7 human review
    review_file: str | None = None
    # 8 balancing
    balance: bool = True
    per_class: int = 450
    drop_short_classes: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.near_distance <= 64 or not 0 <= self.reference_distance <= 64:
            raise UserInputError("Hamming distances must be between 0 and 64 bits")
        if not 0 <= self.outlier_fraction < 1:
            raise UserInputError(f"--outlier-fraction must be in [0, 1) (got {self.outlier_fraction})")
        if (self.outliers or self.relevance) and not self.model:
            raise UserInputError("--outliers/--relevance need an embedding model: give --model SPEC")
        if self.per_class < 1 or self.workers < 1 or self.chunk_size < 1:
            raise UserInputError("--per-class, --workers and --chunk-size must be at least 1")

    def enabled(self, step: str) -> bool:
        if step == "reference":
            return bool(self.reference)
        if step == "review":
            return self.review_file is not None
        return bool(getattr(self, step))

    def step_settings(self, step: str) -> dict:
        """The thresholds that decide ``step``'s outcome (its resume fingerprint and report entry)."""
        settings = {
            "validate": {"min_side": self.min_side, "max_pixels": self.max_pixels, "concepts": self.concepts},
            "exact_dedup": {"hashes": ["sha256 of bytes", "sha256 of decoded RGB pixels"]},
            "near_dedup": {"hash": "pHash (imagededup-compatible)", "max_hamming_distance": self.near_distance,
                           "scope": "within each concept"},
            "reference": {"sets": list(self.reference), "max_hamming_distance": self.reference_distance,
                          "min_cosine": self.reference_cosine, "model": self.model},
            "outliers": {"fraction": self.outlier_fraction, "model": self.model,
                         "score": "mean cosine similarity to the concept's other images"},
            "relevance": {"min_similarity": self.relevance_threshold, "model": self.model, "prompts": self.prompts},
            "review": {"decisions_file": self.review_file},
            "balance": {"per_class": self.per_class, "seed": self.seed, "drop_short_classes": self.drop_short_classes},
        }
        return {"enabled": self.enabled(step), **settings[step]}

    def to_json(self) -> dict:
        """The settings that shape the result; execution knobs (workers, chunk and batch sizes,
        device) are left out because they never change the output."""
        record = asdict(self)
        record["reference"] = list(self.reference)
        for knob in EXECUTION_KNOBS:
            record.pop(knob)
        return record
