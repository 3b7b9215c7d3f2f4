"""Shared fixtures of the builder tests (collect, curate, publish).

Keep edits additive: several test modules use these.
"""

from __future__ import annotations

import io
import types

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from letitwag.builders.manifest import IMAGE_TYPE, write_candidates


def smooth_image(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A distinct, photo-like (low-frequency) RGB image per seed: distinct pHashes across seeds."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8))
    image = np.asarray(coarse.resize(size, Image.BICUBIC), dtype=np.float32)
    image += rng.normal(0, 4, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def build_candidates(directory, rows: list[dict]) -> None:
    """Write a candidate manifest; rows give ``candidate_id``, ``concept_id`` and ``data`` (bytes),
    plus ``inline`` (store bytes in the parquet instead of a file)."""
    images = []
    for row in rows:
        if row.get("inline"):
            images.append({"bytes": row["data"], "path": None})
        else:
            name = f"images/{row['candidate_id'].replace('/', '_')}.img"
            (directory / "images").mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(row["data"])
            images.append({"bytes": None, "path": name})
    table = pa.table({
        "candidate_id": [r["candidate_id"] for r in rows],
        "concept_id": [r["concept_id"] for r in rows],
        "image": pa.array(images, IMAGE_TYPE),
        "source": ["folder"] * len(rows),
        "url": [r.get("url") for r in rows],
        "license": ["cc-by-4.0"] * len(rows),
    })
    write_candidates(directory, table, {"source": "test fixture"})


@pytest.fixture
def faulty_candidates(tmp_path):
    """Two concepts of distinct images, with planted duplicates and every kind of bad file.

    Expected fate per candidate id is returned as ``{candidate_id: step or None}``.
    """
    directory = tmp_path / "candidates"
    directory.mkdir()
    rows, fate = [], {}

    def add(candidate_id, concept, data, step, inline=False):
        rows.append({"candidate_id": candidate_id, "concept_id": concept, "data": data, "inline": inline})
        fate[candidate_id] = step

    for index in range(8):
        add(f"dog/{index}", "dog", encode(smooth_image(index)), None, inline=index % 2 == 1)
    for index in range(8, 14):
        add(f"cat/{index}", "cat", encode(smooth_image(index)), None)
    base = smooth_image(0)
    add("dog/resized", "dog", encode(base.resize((150, 112), Image.BICUBIC), quality=70), "near_dedup")
    add("dog/copy", "dog", encode(smooth_image(1)), "exact_dedup")
    add("cat/shared", "cat", encode(smooth_image(2)), "exact_dedup")  # same pixels as dog/2: ambiguous
    fate["dog/2"] = "exact_dedup"
    full = encode(smooth_image(20))
    add("dog/truncated", "dog", full[: len(full) // 2], "validate")
    add("dog/empty", "dog", b"", "validate")
    add("dog/text", "dog", b"this is not an image\n", "validate", inline=True)
    add("dog/tiny", "dog", encode(smooth_image(21, (20, 20)), "PNG"), "validate")
    add("dog/bomb", "dog", encode(Image.new("1", (12000, 12000)), "PNG"), "validate")
    add("cat/cmyk", "cat", encode(smooth_image(30).convert("CMYK")), None)
    add("cat/palette", "cat", encode(smooth_image(31).convert("P"), "PNG"), None)
    sixteen = (np.asarray(smooth_image(32).convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    add("cat/16bit", "cat", encode(Image.fromarray(sixteen), "PNG"), None)
    add("cat/alpha", "cat", encode(smooth_image(33).convert("RGBA"), "PNG"), None)
    exif = Image.Exif()
    exif[0x0112] = 6
    add("cat/rotated", "cat", encode(smooth_image(34), exif=exif.tobytes()), None)
    build_candidates(directory, rows)
    return directory, fate


@pytest.fixture
def image_tools():
    """The helpers above, as a fixture (test modules must not ``import conftest``: every test
    folder has one and the name is ambiguous when the whole suite runs)."""
    return types.SimpleNamespace(smooth_image=smooth_image, encode=encode, build_candidates=build_candidates)
