"""Decoded images -> the model's input batch, on whatever device the images are on.

``TensorPreprocess(recipe)`` applies a ``PixelRecipe`` (resize, centre crop, scale, normalise)
to a list of ``uint8`` ``[3, H, W]`` tensors of any sizes and returns ``float32 [N, 3, h, w]``,
equal to what the model's PIL preprocessing gives for the same decoded pixels (``resample``).

Why buckets: images of different sizes cannot be stacked, and one set of kernels per image
costs more host time than the GPU spends on it. Each image is cut to the input window its
crop reads, windows of similar size share a padded buffer (one copy per image), and a bucket
is resized with two batched matrix products; padding meets zero weights, so it never leaks.
"""

from __future__ import annotations

from collections import defaultdict

from letitwag.pixels.recipe import PixelRecipe
from letitwag.pixels.resample import AxisPlan, weight_matrices

BUCKET = 128  # windows are padded up to a multiple of this many pixels per side
MAX_BUCKET_ELEMENTS = 48 << 20  # float32 elements of one padded bucket (192 MiB): larger ones are split


def _padded(size: int) -> int:
    return -(-size // BUCKET) * BUCKET


class TensorPreprocess:
    """Callable: list of decoded ``uint8 [3, H, W]`` tensors (one device) -> ``float32 [N, 3, h, w]``.

    ``exact``: resize in float64, which reproduces PIL's integer arithmetic pixel for pixel; the
    default float32 sums round a tie the other way for ~1e-5 (bicubic) to ~1e-3 (bilinear) of
    the pixels, by one level, at half the cost (and float64 is slow on most GPUs).
    """

    def __init__(self, recipe: PixelRecipe, exact: bool = False) -> None:
        self.recipe = recipe
        self.exact = exact
        self._constants: dict = {}

    def plans(self, height: int, width: int) -> tuple[AxisPlan, AxisPlan]:
        """(rows, columns) plans of an image of this size."""
        recipe = self.recipe
        resized = recipe.resized_size(height, width)
        top, left = recipe.crop_origin(*resized)
        out_h, out_w = recipe.output_size
        return (AxisPlan(height, resized[0], top, out_h, recipe.interpolation),
                AxisPlan(width, resized[1], left, out_w, recipe.interpolation))

    def __call__(self, images: list):
        import torch

        out_h, out_w = self.recipe.output_size
        if not images:
            return torch.empty((0, 3, out_h, out_w))
        device = images[0].device
        buckets: dict[tuple, list] = defaultdict(list)
        for position, image in enumerate(images):
            rows, columns = self.plans(int(image.shape[-2]), int(image.shape[-1]))
            (top, bottom), (left, right) = rows.window, columns.window
            key = (rows.resamples, columns.resamples, _padded(bottom - top), _padded(right - left))
            buckets[key].append((position, image[:, top:bottom, left:right], rows, columns))
        batch = torch.empty((len(images), 3, out_h, out_w), dtype=torch.float32, device=device)
        for (resample_rows, resample_columns, height, width), members in buckets.items():
            step = max(1, MAX_BUCKET_ELEMENTS // (3 * height * width))
            for start in range(0, len(members), step):
                part = members[start : start + step]
                resized = self._resize(part, height, width, resample_rows, resample_columns, device)
                index = torch.tensor([member[0] for member in part], device=device)
                batch.index_copy_(0, index, resized)
        return self._normalise(batch)

    def _resize(self, members: list, height: int, width: int, resample_rows: bool, resample_columns: bool, device):
        """One bucket: pad the windows into one buffer, then rows and columns as batched products."""
        import torch

        out_h, out_w = self.recipe.output_size
        padded = torch.zeros((len(members), 3, height, width), dtype=torch.uint8, device=device)
        for slot, (_, window, _, _) in enumerate(members):
            padded[slot, :, : window.shape[-2], : window.shape[-1]].copy_(window)
        dtype = torch.float64 if self.exact else torch.float32
        pixels = padded.to(dtype)
        if resample_columns:  # PIL's horizontal pass first
            columns = weight_matrices([member[3] for member in members], width, device).to(dtype)
            pixels = _round_to_bytes(pixels @ columns.transpose(1, 2)[:, None])
        else:
            pixels = pixels[..., :out_w]
        if resample_rows:
            rows = weight_matrices([member[2] for member in members], height, device).to(dtype)
            pixels = _round_to_bytes(rows[:, None] @ pixels)
        else:
            pixels = pixels[..., :out_h, :]
        return pixels.float()

    def _normalise(self, batch):
        """``(x * scale - mean) / std`` per channel, in the order ``ToTensor`` + ``Normalize`` do it."""
        import torch

        device = batch.device
        if device not in self._constants:
            mean = torch.tensor(self.recipe.mean, dtype=torch.float32, device=device)[:, None, None]
            std = torch.tensor(self.recipe.std, dtype=torch.float32, device=device)[:, None, None]
            self._constants[device] = (mean, std)
        mean, std = self._constants[device]
        if self.recipe.scale == 1.0 / 255.0:
            batch = batch.div_(255.0)  # ToTensor divides; multiplying by 1/255 rounds differently
        else:
            batch = batch.mul_(self.recipe.scale)
        return batch.sub_(mean).div_(std)


def _round_to_bytes(values):
    """PIL's rounding of a pass's result: ``floor(x + 0.5)`` clamped to 0..255."""
    return values.add_(0.5).floor_().clamp_(0.0, 255.0)
