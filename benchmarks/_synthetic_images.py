"""Photograph-like JPEGs for the GPU benchmark and the decode tests, made fast and reproducibly.

Why not flat colours or white noise: a JPEG decoder's and a resampler's work (and their small
differences) depend on the content. Natural images have a power spectrum falling as ~1/f;
textures with that spectrum, tinted per class, with a few sharp-edged shapes, compress like
photographs (a 500x375 picture at quality 85-95 is ~50-120 KB, like a web photo) and exercise
the same code paths. A few large textures are made once per process (FFT); each image is a
random crop of one, colour-mapped and drawn on, then encoded, so one core makes hundreds of
images per second.
"""

from __future__ import annotations

import io

import numpy as np

TEXTURE_SIDE = 1024
# Web-like image sizes: mostly 500x375 landscape and portrait, the rest anything in between.
COMMON_SIZES = ((500, 375), (375, 500), (500, 333), (640, 480))


def pink_texture(rng: np.random.Generator, side: int = TEXTURE_SIDE, exponent: float = 1.0) -> np.ndarray:
    """``[side, side, 3]`` float32, zero mean, unit variance, power spectrum ~ 1/f^(2*exponent),
    channels correlated as in photographs."""
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius ** exponent
        plane = np.fft.irfft2(spectrum, s=(side, side))
        channels.append((plane - plane.mean()) / plane.std())
    mixed = np.stack(channels, -1) @ (np.eye(3) * 0.6 + 0.4 * rng.random((3, 3)))
    return (mixed / mixed.std()).astype(np.float32)


class PhotoMaker:
    """Seeded maker of photograph-like images; ``textures`` are built once (a second or two)."""

    def __init__(self, seed: int = 0, textures: int = 8, side: int = TEXTURE_SIDE) -> None:
        rng = np.random.default_rng(seed)
        self.textures = [pink_texture(rng, side, exponent=float(rng.uniform(0.9, 1.2))) for _ in range(textures)]
        self.side = side

    def pixels(self, rng: np.random.Generator, label: int, size: tuple[int, int]) -> np.ndarray:
        """``[height, width, 3]`` uint8 for class ``label`` at ``size`` = (width, height)."""
        from PIL import Image, ImageDraw

        width, height = size
        texture = self.textures[int(rng.integers(len(self.textures)))]
        scale = float(rng.uniform(1.0, 2.0))  # zoom: crop a smaller window and stretch it
        crop_h, crop_w = min(self.side, int(height / scale) + 1), min(self.side, int(width / scale) + 1)
        top, left = int(rng.integers(0, self.side - crop_h + 1)), int(rng.integers(0, self.side - crop_w + 1))
        window = texture[top : top + crop_h, left : left + crop_w]
        tint = np.array([(53 * label) % 256, (97 * label + 40) % 256, (181 * label + 80) % 256], np.float32)
        base = 0.55 * tint + 0.45 * rng.uniform(60, 200, 3).astype(np.float32)
        contrast = float(rng.uniform(30, 60))
        image = np.clip(base + contrast * window, 0, 255).astype(np.uint8)
        picture = Image.fromarray(image).resize((width, height), Image.BILINEAR)
        draw = ImageDraw.Draw(picture)
        for _ in range(int(rng.integers(1, 4))):  # sharp edges, as objects in a photograph have
            x0, y0 = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
            x1, y1 = x0 + int(rng.integers(8, width // 2 + 9)), y0 + int(rng.integers(8, height // 2 + 9))
            colour = tuple(int(c) for c in np.clip(tint * rng.uniform(0.4, 1.2) + rng.normal(0, 30, 3), 0, 255))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
        return np.asarray(picture)

    def encoded(self, rng: np.random.Generator, label: int, size: tuple[int, int], fmt: str = "jpeg",
                quality: int | None = None) -> bytes:
        """The image encoded as ``jpeg`` (baseline, 4:2:0), ``progressive`` JPEG, or ``png``."""
        from PIL import Image

        picture = Image.fromarray(self.pixels(rng, label, size))
        buffer = io.BytesIO()
        if fmt == "png":
            picture.save(buffer, "PNG", compress_level=1)
        else:
            quality = quality if quality is not None else int(rng.integers(85, 96))
            picture.save(buffer, "JPEG", quality=quality, progressive=fmt == "progressive")
        return buffer.getvalue()


def web_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height): a common web size 70% of the time, else a random one between 320 and 640."""
    if rng.random() < 0.7:
        return COMMON_SIZES[int(rng.integers(len(COMMON_SIZES)))]
    return int(rng.integers(320, 641)), int(rng.integers(240, 641))
