"""Factories for the ``python:`` adapter tests (importable as ``fake_models``)."""

import numpy as np
import torch


class _Base:
    """A linear 'model' over mean pixel colour and text length; deterministic and tiny."""

    logit_scale = 10.0

    def __init__(self, dim=4):
        self.dim = dim

    @staticmethod
    def preprocess(image):
        pixels = np.asarray(image.convert("RGB").resize((4, 4)), dtype=np.float32)
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1)

    def encode_image(self, pixels):
        means = pixels.mean(dim=(2, 3))
        return torch.cat([means, torch.ones(len(pixels), self.dim - 3)], dim=1)

    def encode_text(self, texts):
        return torch.tensor([[len(t), 1.0, 2.0, 3.0][: self.dim] for t in texts])


class NanModel(_Base):
    def encode_image(self, pixels):
        return torch.full((len(pixels), self.dim), float("nan"))


class WrongShapeModel(_Base):
    def encode_image(self, pixels):
        return torch.ones(len(pixels) + 1, self.dim)


class FakeGenerator:
    def generate(self, prompts, seed=0):
        from PIL import Image

        return [Image.new("RGB", (8, 8), (seed % 255, len(p) % 255, 0)) for p in prompts]


def good(device="cpu"):
    return _Base()


def nan():
    return NanModel()


def wrong_shape():
    return WrongShapeModel()


def generator():
    return FakeGenerator()
