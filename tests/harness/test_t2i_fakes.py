"""Deterministic ``python:`` fakes for the t2i tests (no tests here; importable as ``test_t2i_fakes``).

The generator paints each image one flat colour chosen from its prompt and seed; the judge's
image feature is the image's mean colour and its text feature a fixed vector per colour word,
so every judge score and CLIPScore can be computed by hand.
"""

import os
import time

import torch

TEXT_VECTORS = {"red": [1.0, 0.0, 0.0], "green": [0.0, 1.0, 0.0], "blue": [-1.0, -1.0, 1.0]}


def image_colour(prompt: str, seed: int) -> tuple[int, int, int]:
    """red: pure red for even seeds, magenta for odd ones; green and blue prompts both give green."""
    if "red" in prompt:
        return (255, 0, 0) if seed % 2 == 0 else (255, 0, 255)
    return (0, 255, 0)


class ColourGenerator:
    def __init__(self):
        self.delay = float(os.environ.get("LETITWAG_T2I_DELAY", "0"))
        self.log = os.environ.get("LETITWAG_T2I_LOG")

    def generate(self, prompts, seed, size=8):
        from PIL import Image

        if self.log:
            with open(self.log, "a", encoding="utf-8") as handle:
                handle.writelines(f"{prompt}\n" for prompt in prompts)
        time.sleep(self.delay)
        return [Image.new("RGB", (size, size), image_colour(p, s)) for p, s in zip(prompts, seed)]


def colour_generator():
    return ColourGenerator()


class BrokenGenerator:
    def __init__(self, how):
        self.how = how

    def generate(self, prompts, seed):
        import numpy as np
        from PIL import Image

        if self.how == "count":
            return [Image.new("RGB", (8, 8))] * (len(prompts) + 1)
        return [np.full((8, 8, 3), np.nan) for _ in prompts]


def too_many_images():
    return BrokenGenerator("count")


def nan_arrays():
    return BrokenGenerator("nan")


def mean_colour(image):
    """PIL image -> its mean RGB in [0, 1] as a [3, 1, 1] tensor (module-level: picklable)."""
    import numpy as np

    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    return pixels.mean(dim=(0, 1)).reshape(3, 1, 1)


class ColourJudge:
    preprocess = staticmethod(mean_colour)
    logit_scale = 100.0

    def encode_image(self, pixels):
        return pixels.flatten(1)

    def encode_text(self, texts):
        rows = []
        for text in texts:
            word = next(w for w in TEXT_VECTORS if w in text)
            rows.append(TEXT_VECTORS[word])
        return torch.tensor(rows)


def colour_judge():
    return ColourJudge()


CONCEPTS = ["red_panda", "green_tree_frog", "blue_jay"]
REAL_COLOURS = [(255, 0, 0), (200, 0, 0), (0, 255, 0), (0, 200, 0), (0, 0, 255), (0, 0, 200)]


def write_colour_dataset(folder):
    """Two real images per concept (flat colours), HF Hub layout, one ``test`` split."""
    import datasets

    from dataset_helpers import png, write_hub_layout

    dataset = datasets.Dataset.from_dict(
        {"image": [{"bytes": png(c), "path": None} for c in REAL_COLOURS], "label": [0, 0, 1, 1, 2, 2]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CONCEPTS)}),
    )
    return write_hub_layout(dataset, folder, shards=1)
