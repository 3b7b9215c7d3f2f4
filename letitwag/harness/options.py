"""Everything a run is configured by; the CLI fills it, a notebook can build it directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATASET = "bethgelab/Let-It-Wag"


@dataclass
class EvaluationOptions:
    model: str
    task: str = "classification"
    dataset: str = DEFAULT_DATASET
    split: str | None = None
    dataset_revision: str | None = None
    out: Path | None = None
    image_column: str | None = None
    label_column: str | None = None
    classnames: Path | None = None
    prompts: str | None = None  # None: the dataset's shipped templates, else "ensemble" (prompts.resolve_prompts)
    batch_size: int = 64
    workers: int | None = None  # None: by device and decode path (features.resolve_workers)
    device: str | None = None  # None: cuda if available, else cpu
    decode: str = "auto"  # auto | cpu | gpu: where images are decoded and preprocessed (letitwag.pixels.decoder)
    cpu_streams: int | None = None  # None: one image batch per CPU at once (letitwag.harness.streams)
    precision: str = "fp32"
    seed: int = 0
    limit: int | None = None
    cache_dir: Path | None = None  # None: ~/.cache/letitwag
    no_cache: bool = False
    chunk_size: int = 2048
    bootstrap_samples: int = 1000
    trust_remote_code: bool = False
    extra: dict = field(default_factory=dict)  # task-specific options added by later tasks

    def resolved_device(self) -> str:
        if self.device:
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_cache_dir(self) -> Path | None:
        from letitwag.harness.cache import default_cache_dir

        if self.no_cache:
            return None
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
