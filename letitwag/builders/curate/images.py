"""Step 1 for one image: decode fully, refuse what a test set must not contain, normalise to RGB.

Why each check: a truncated or corrupt file decodes partially (grey bands) or not at all; a
huge header (a "decompression bomb") can exhaust memory before a single pixel is seen, so the
pixel count is checked from the header *before* decoding; tiny images carry no information;
CMYK, palette, 16-bit and alpha images decode to colours that models never saw in training
unless converted; and a phone photo stored sideways must be turned by its EXIF orientation so
the published pixels are what a person sees. Every rejection carries a reason string.

The pixel hash and the pHash are computed here from the final RGB pixels, because the image
is already decoded: no second decode later.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from letitwag.builders.curate.phash import phash_image, to_hex
from letitwag.builders.curate.pixels import packed_rgb, rgb_view

# Pillow's own bomb guard is a warning below 2x its limit; we check the header ourselves.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class ImageLimits:
    """Thresholds of the validate step (recorded in the curation report)."""

    min_side: int = 64
    max_pixels: int = 64_000_000
    alpha_background: tuple[int, int, int] = (255, 255, 255)


@dataclass
class CheckedImage:
    """Outcome of validating one image; ``reason`` is set exactly when it is rejected."""

    reason: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    pixel_sha256: str | None = None
    phash: str | None = None
    converted: str | None = None  # what was changed ("CMYK->RGB", "EXIF orientation 6", ...)
    rgb_png: bytes | None = None  # the converted image, when a conversion happened


def _to_rgb(image: Image.Image, limits: ImageLimits) -> tuple[Image.Image, list[str]]:
    changes: list[str] = []
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        array = np.asarray(image)
        if array.dtype.kind == "f":
            array = np.clip(array, 0, 255)
        elif mode.startswith("I;16") or array.max(initial=0) > 255:
            array = array.astype(np.uint32) >> 8
        image = Image.fromarray(array.astype(np.uint8), "L")
        changes.append(f"{mode}->8-bit")
    if "A" in image.mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, limits.alpha_background + (255,))
        image = Image.alpha_composite(background, rgba)
        changes.append(f"{mode} alpha->composited on {limits.alpha_background}")
    if image.mode != "RGB":
        if not changes:
            changes.append(f"{image.mode}->RGB")
        image = image.convert("RGB")
    return image, changes


def check_image(data: bytes, limits: ImageLimits) -> CheckedImage:
    """Validate encoded image ``data`` (see the module docstring); never raises for bad data."""
    if not data:
        return CheckedImage(reason="empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            fmt = image.format
            if width * height > limits.max_pixels:
                return CheckedImage(reason=f"decompression bomb refused: {width}x{height} = {width * height} pixels "
                                           f"> {limits.max_pixels}", width=width, height=height, format=fmt)
            image.load()
            orientation = image.getexif().get(0x0112, 1)
            oriented = ImageOps.exif_transpose(image) if orientation not in (1, None) else image
    except UnidentifiedImageError:
        return CheckedImage(reason="not an image (no decoder recognises it)")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        return CheckedImage(reason=f"decode failed: {str(error)[:160]}")
    except Exception as error:  # noqa: BLE001 - untrusted bytes: a decoder bug must not stop the run
        return CheckedImage(reason=f"decode failed: {type(error).__name__}: {str(error)[:120]}")
    changes = []
    if oriented is not image:
        changes.append(f"EXIF orientation {orientation} applied")
    if min(oriented.size) < limits.min_side:
        return CheckedImage(reason=f"too small: {oriented.width}x{oriented.height} < min side {limits.min_side}",
                            width=oriented.width, height=oriented.height, format=fmt)
    try:
        rgb, conversions = _to_rgb(oriented, limits)
    except Exception as error:  # noqa: BLE001 - exotic modes Pillow cannot convert
        return CheckedImage(reason=f"cannot convert {oriented.mode} to RGB: {str(error)[:120]}",
                            width=oriented.width, height=oriented.height, format=fmt)
    changes.extend(conversions)
    pixels = rgb_view(rgb)  # zero-copy where Pillow allows; hashed and resized in place
    pixel_hash = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    pixel_hash.update(packed_rgb(pixels))  # the bytes of rgb.tobytes(), without its copies
    phash = to_hex(phash_image(rgb, pixels))
    converted_png = None
    if changes:
        buffer = io.BytesIO()
        rgb.save(buffer, format="PNG", optimize=False)
        converted_png = buffer.getvalue()
    return CheckedImage(None, rgb.width, rgb.height, fmt, pixel_hash.hexdigest(), phash, "; ".join(changes) or None,
                        converted_png)
