"""Which images the device decodes: a JPEG's header, read without decoding it.

Why: nvJPEG decodes baseline JPEGs in batches on the GPU's hardware decoder, and everything
else one image at a time with the host doing the entropy decoding, holding up the batch.
Reading the frame header (a few hundred bytes) in the DataLoader workers lets them send
baseline YCbCr or greyscale JPEGs to the device as bytes and decode the rest (PNG, WebP,
progressive or CMYK JPEGs, huge images) themselves with the model's own CPU preprocessing, in
parallel. Both decoders then see only what they are good at.
"""

from __future__ import annotations

import struct

# Frame markers: SOF0 baseline and SOF1 extended sequential (Huffman); the other SOFn are
# progressive, lossless, hierarchical or arithmetic-coded.
_SEQUENTIAL = (0xC0, 0xC1)
_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}
MAX_DEVICE_PIXELS = 40_000_000  # larger images are decoded on the CPU: their buffers would crowd the GPU


def device_route(data: bytes | memoryview) -> str | None:
    """``None`` when the device may decode ``data`` (a baseline JPEG with 1 or 3 YCbCr/grey
    components), else why not: ``not_jpeg``, ``non_baseline_jpeg``, ``cmyk_or_rgb_jpeg``,
    ``large_image`` or ``bad_header`` (the CPU path then decodes it, or counts it corrupt)."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return "not_jpeg"
    position, adobe = 2, False
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return "bad_header"
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker == 0xEE and bytes(data[position + 4 : position + 9]) == b"Adobe":
            adobe = True  # Adobe's colour transform marker: RGB or CMYK JPEGs the decoders treat differently
        if marker in _FRAMES:
            if marker not in _SEQUENTIAL:
                return "non_baseline_jpeg"
            if position + 10 > len(data):
                return "bad_header"
            height, width, components = struct.unpack_from(">HHB", data, position + 5)
            if components not in (1, 3) or adobe:
                return "cmyk_or_rgb_jpeg"
            if height * width > MAX_DEVICE_PIXELS or height == 0 or width == 0:
                return "large_image"
            return None
        if marker in (0xDA, 0xD9):  # scan or end before any frame header
            return "bad_header"
        position += 2 + length
    return "bad_header"
