"""``python:package.module:factory``: bring any model as an object with a small interface.

Encoders: ``encode_image(pixels)``, ``encode_text(tokens_or_texts)``, ``preprocess`` (or
``transform``), optional ``tokenizer`` (texts -> tensor; without one ``encode_text`` gets the
strings) and ``logit_scale``. Generators: ``generate(prompts, seed=..., **options)``. The factory
may accept ``device`` and ``precision`` keyword arguments.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Sequence

from letitwag.errors import UserInputError
from letitwag.models.base import Encoder, Generator, check_generated
from letitwag.models.spec import ModelSpec


def build_object(spec: ModelSpec, device: str, precision: str):
    """Import the module and call the factory with the options it accepts."""
    try:
        module = importlib.import_module(spec.name)
    except ImportError as error:
        raise UserInputError(f"model spec {spec.raw!r}: cannot import {spec.name}: {error}") from None
    factory = getattr(module, spec.pretrained, None)
    if not callable(factory):
        public = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        from letitwag.models.spec import close_matches

        raise UserInputError(
            f"model spec {spec.raw!r}: {spec.name} has no callable {spec.pretrained!r}{close_matches(spec.pretrained, public)}"
        )
    accepted = inspect.signature(factory).parameters
    kwargs = {k: v for k, v in {"device": device, "precision": precision}.items() if k in accepted}
    return factory(**kwargs)


class PythonEncoder(Encoder):
    adapter = "python"

    def __init__(self, spec: ModelSpec, obj, device: str = "cpu", precision: str = "fp32"):
        self._bind(spec, device, precision)
        self.obj = obj
        self.preprocess = getattr(obj, "preprocess", None) or getattr(obj, "transform", None)
        if self.preprocess is None:
            raise UserInputError(f"model spec {spec.raw!r}: the object needs a `preprocess` or `transform` attribute")
        self.tokenizer = getattr(obj, "tokenizer", None)
        scale = getattr(obj, "logit_scale", 100.0)
        self.logit_scale = float(scale.exp().item()) if hasattr(scale, "exp") else float(scale)

    def _inputs_dtype(self):
        import torch

        return getattr(self.obj, "dtype", torch.float32)

    def _encode_images(self, pixel_batch):
        return self.obj.encode_image(pixel_batch)

    def _encode_texts(self, texts):
        if self.tokenizer is None:
            return self.obj.encode_text(texts)
        tokens = self.tokenizer(texts)
        return self.obj.encode_text(tokens.to(self.device) if hasattr(tokens, "to") else tokens)

    def metadata(self) -> dict:
        extra = self.obj.metadata() if callable(getattr(self.obj, "metadata", None)) else {}
        return {"spec": self.spec, "adapter": self.adapter, "name": self.parsed.name,
                "pretrained": None, "resolved_checkpoint": None, "revision": None,
                "random_weights": False, **extra}


class PythonGenerator(Generator):
    adapter = "python"

    def __init__(self, spec: ModelSpec, obj, device: str = "cpu", precision: str = "fp32"):
        self._bind(spec, device, precision)
        self.obj = obj

    def generate(self, prompts: Sequence[str], seed: int | Sequence[int] = 0, **options) -> list:
        prompts = list(prompts)
        return check_generated(list(self.obj.generate(prompts, seed=seed, **options)), prompts, self.spec)

    def metadata(self) -> dict:
        extra = self.obj.metadata() if callable(getattr(self.obj, "metadata", None)) else {}
        return {"spec": self.spec, "adapter": self.adapter, "name": self.parsed.name,
                "resolved_checkpoint": None, "revision": None, "random_weights": False, **extra}
