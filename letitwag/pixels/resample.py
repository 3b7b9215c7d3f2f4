"""PIL's antialiased resize as matrix products, so a batch of decoded images resizes on the device.

Why not ``torchvision``'s tensor resize: on a GPU it interpolates in float without PIL's rounding
to 8 bits after each pass, so about 15% of a photo's pixels resized to 224 differ from PIL's (by
up to 3 levels for a 500x375 downscale, 7 for an upscale). PIL resizes separably (rows, then columns), each
output pixel a weighted sum of a window of input pixels, with weights from the filter
(bicubic with a = -0.5, or the triangle) stretched by the downscale factor, normalised, and
quantised to 22 fractional bits; each pass rounds to 0..255. The same weights, applied as
``image @ Wx`` then ``Wy @ image`` with the same rounding, reproduce PIL: identical pixels in
float64 and all but ~1e-5 (bicubic) to ~1e-3 (bilinear) of them, off by one level, in float32
(``tests/pixels``). A centre crop is the choice of
output rows and columns, so only the cropped pixels are computed.

The weights are built for a whole batch at once on the device (one set of tensor operations,
whatever the number of images), compactly (``K`` taps per output pixel) and scattered into
dense matrices sized to the batch's padded input window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRECISION_BITS = 22  # PIL's fixed-point precision of 8-bit resampling weights (32 - 8 - 2)
SUPPORT = {"bicubic": 2.0, "bilinear": 1.0}
BICUBIC_A = -0.5  # PIL's (and torchvision's antialiased) bicubic coefficient


@dataclass(frozen=True)
class AxisPlan:
    """One axis of one image: ``count`` output pixels from ``first`` on, of ``size_in`` -> ``size_out``.

    ``window``: the input pixels ``[start, stop)`` the outputs read (all of them when no pass
    is needed on this axis, then the outputs are the inputs ``[first, first + count)``)."""

    size_in: int
    size_out: int
    first: int
    count: int
    interpolation: str

    @property
    def resamples(self) -> bool:
        """PIL skips a pass whose output size equals its input size."""
        return self.size_in != self.size_out

    def _bounds(self, output: int) -> tuple[int, int]:
        scale = self.size_in / self.size_out
        support = SUPPORT[self.interpolation] * max(scale, 1.0)
        center = (output + 0.5) * scale
        return max(math.trunc(center - support + 0.5), 0), min(math.trunc(center + support + 0.5), self.size_in)

    @property
    def window(self) -> tuple[int, int]:
        if not self.resamples:
            return self.first, self.first + self.count
        return self._bounds(self.first)[0], self._bounds(self.first + self.count - 1)[1]

    @property
    def taps(self) -> int:
        """Weights per output pixel (PIL's ``ksize``)."""
        return int(math.ceil(SUPPORT[self.interpolation] * max(self.size_in / self.size_out, 1.0))) * 2 + 1


def _filter(x, interpolation: str):
    import torch

    x = x.abs()
    if interpolation == "bilinear":
        return (1.0 - x).clamp_(min=0.0)
    a = BICUBIC_A
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def weight_matrices(plans: list[AxisPlan], width: int, device):
    """``[len(plans), count, width]`` float64: row ``j`` of image ``n`` holds the weights of output
    pixel ``plans[n].first + j`` over the input pixels ``window.start + 0 .. width - 1``.

    All plans share ``count`` and ``interpolation``; computed in float64 as PIL computes them.
    """
    import torch

    count, interpolation = plans[0].count, plans[0].interpolation
    f64 = dict(dtype=torch.float64, device=device)
    size_in = torch.tensor([p.size_in for p in plans], **f64)[:, None]
    scale = size_in / torch.tensor([p.size_out for p in plans], **f64)[:, None]
    stretch = scale.clamp(min=1.0)
    support = SUPPORT[interpolation] * stretch
    outputs = torch.tensor([p.first for p in plans], **f64)[:, None] + torch.arange(count, **f64)[None]
    center = (outputs + 0.5) * scale  # [n, count]
    low = torch.trunc(center - support + 0.5).clamp(min=0.0)
    high = torch.minimum(torch.trunc(center + support + 0.5), size_in)
    taps = max(p.taps for p in plans)
    position = low[..., None] + torch.arange(taps, **f64)  # absolute input index of each tap
    valid = position < high[..., None]
    weights = _filter((position - center[..., None] + 0.5) / stretch[..., None], interpolation) * valid
    total = weights.sum(dim=-1, keepdim=True)
    weights = torch.where(total != 0, weights / total, weights)
    one = float(1 << PRECISION_BITS)
    weights = torch.trunc(weights * one + torch.where(weights < 0, -0.5, 0.5)) / one
    start = torch.tensor([p.window[0] for p in plans], **f64)[:, None, None]
    columns = torch.where(valid, position - start, torch.zeros_like(position)).long()
    dense = torch.zeros((len(plans), count, width), dtype=torch.float64, device=device)
    dense.scatter_add_(2, columns, weights)  # invalid taps add 0 at column 0
    return dense
