"""``python:`` model factories used by the harness tests (importable as ``harness_models``)."""

import os
import time

import torch


class Wrapped:
    """The tiny open_clip model behind the python: adapter, optionally slow or memory-limited."""

    def __init__(self, delay=0.0, max_batch=None):
        from letitwag.models import load_encoder

        inner = load_encoder(os.environ["LETITWAG_TEST_SPEC"])
        self.model = inner.model
        self.preprocess = inner.preprocess
        self.tokenizer = inner.tokenizer
        self.logit_scale = inner.logit_scale
        self.delay = delay
        self.max_batch = max_batch
        self.seen_batches = []

    def encode_image(self, pixels):
        self.seen_batches.append(len(pixels))
        if self.max_batch is not None and len(pixels) > self.max_batch:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB (simulated)")
        time.sleep(self.delay)
        return self.model.encode_image(pixels)

    def encode_text(self, tokens):
        return self.model.encode_text(tokens)


def slow():
    return Wrapped(delay=float(os.environ.get("LETITWAG_TEST_DELAY", "0.4")))


def small_memory():
    return Wrapped(max_batch=2)


class NanImages(Wrapped):
    def encode_image(self, pixels):
        return torch.full((len(pixels), 32), float("nan"))


def nan_images():
    return NanImages()
