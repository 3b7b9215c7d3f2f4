"""The encoder and generator interfaces every adapter implements.

Why a base class rather than a bare protocol: output checks (NaN, shape, batch size) and
L2 normalisation live here once, so a broken model fails with the same clear error whatever
adapter loaded it, and callers can trust every embedding to be float32 unit vectors.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Sequence

from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16", "amp")


class ModelOutputError(UserInputError):
    """A model returned NaN/inf or a tensor of the wrong shape."""


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UserInputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def weight_dtype(precision: str):
    """The dtype the weights are cast to (``amp`` keeps fp32 weights and autocasts the forward)."""
    import torch

    return {"fp32": torch.float32, "amp": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
        check_precision(precision)
    ]


def autocast_context(precision: str, device: str):
    """Autocast for ``amp`` (bf16 on CPU, fp16 on CUDA); a no-op otherwise."""
    import torch

    if precision != "amp":
        return contextlib.nullcontext()
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device_type, dtype=dtype)


def normalized_features(features, expected_rows: int, what: str, spec: str, dim: int | None = None):
    """Check a raw feature tensor and return it L2-normalised as float32 on its device."""
    import torch

    if not isinstance(features, torch.Tensor):
        raise ModelOutputError(f"{spec}: {what} encoder returned {type(features).__name__}, expected a tensor")
    if features.ndim != 2 or features.shape[0] != expected_rows or (dim is not None and features.shape[1] != dim):
        want = f"[{expected_rows}, {dim if dim is not None else 'D'}]"
        raise ModelOutputError(
            f"{spec}: {what} encoder returned shape {list(features.shape)}, expected {want}; "
            "check the model's encode function"
        )
    features = features.float()
    if not torch.isfinite(features).all():
        raise ModelOutputError(
            f"{spec}: {what} encoder returned NaN/inf values; try --precision fp32 or check the checkpoint"
        )
    return torch.nn.functional.normalize(features, dim=-1)


class LoadedModel:
    """What every loaded model records about how it was asked for (shared by encoders and generators)."""

    def _bind(self, spec, device: str, precision: str) -> None:
        """Keep the spec string, its parsed form, the device and the checked precision."""
        self.spec = spec.raw
        self.parsed = spec
        self.device = device
        self.precision = check_precision(precision)


class Encoder(LoadedModel):
    """A dual encoder: images and texts into one space, L2-normalised float32 ``[N, D]``.

    Subclasses set ``preprocess`` (PIL image -> CHW tensor, picklable for DataLoader workers),
    ``logit_scale`` and implement ``_encode_images`` / ``_encode_texts`` returning raw features.
    """

    spec: str
    adapter: str
    preprocess: Callable
    logit_scale: float = 100.0
    device: str = "cpu"
    precision: str = "fp32"

    def _encode_images(self, pixel_batch):  # pragma: no cover - interface
        raise NotImplementedError

    def _encode_texts(self, texts: list[str]):  # pragma: no cover - interface
        raise NotImplementedError

    def _inputs_dtype(self):
        return weight_dtype(self.precision)

    def encode_images(self, pixel_batch):
        """Pixels ``[N, 3, H, W]`` (from ``preprocess``) -> unit vectors ``[N, D]``."""
        import torch

        with torch.inference_mode(), autocast_context(self.precision, self.device):
            pixels = pixel_batch.to(self.device, dtype=self._inputs_dtype(), non_blocking=True)
            raw = self._encode_images(pixels)
        return normalized_features(raw, pixel_batch.shape[0], "image", self.spec)

    def encode_texts(self, texts: Sequence[str]):
        """Texts -> unit vectors ``[N, D]``."""
        import torch

        texts = list(texts)
        with torch.inference_mode(), autocast_context(self.precision, self.device):
            raw = self._encode_texts(texts)
        return normalized_features(raw, len(texts), "text", self.spec)

    def metadata(self) -> dict:
        """Provenance for results files: adapter, resolved checkpoint, revision, random weights."""
        return {"spec": self.spec, "adapter": self.adapter}


class Generator(LoadedModel):
    """A text-to-image model: ``generate(prompts, seed) -> list of PIL images`` (one per prompt)."""

    spec: str
    adapter: str
    device: str = "cpu"
    precision: str = "fp32"

    def generate(self, prompts: Sequence[str], seed: int = 0, **options) -> list:  # pragma: no cover
        raise NotImplementedError

    def metadata(self) -> dict:
        return {"spec": self.spec, "adapter": self.adapter}


def check_generated(images: list, prompts: Sequence[str], spec: str) -> list:
    """Check a generator gave one PIL image per prompt."""
    from PIL import Image

    if len(images) != len(prompts) or not all(isinstance(image, Image.Image) for image in images):
        raise ModelOutputError(
            f"{spec}: generate() returned {len(images)} objects for {len(prompts)} prompts; "
            "expected one PIL image per prompt"
        )
    return images
