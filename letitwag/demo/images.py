"""The demo's image set, drawn on the spot: license-clean, offline, and with work for curation.

Why drawn rather than bundled: no photo has to ship with the package, every pixel is made by
this code (so the set is public domain, CC0), and the same seed always gives the same files.
Each concept gets its own visual motif (shape kind and palette) over a random gradient with
noise, so images of one concept resemble each other and pHash tells distinct images apart.
Planted problems, recorded in ``planted.json``, give each curation step something to do:
a byte copy (exact duplicate), a re-encoded slightly brightened copy (pHash near duplicate), a
corrupt file (fails to decode) and an image below the minimum side (fails validation).
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from letitwag.concepts import ConceptList
from letitwag.io import atomic_write_json

logger = logging.getLogger(__name__)

IMAGE_SIDE = 96
LICENSE = "CC0-1.0 (drawn procedurally by letitwag demo)"
SHAPES = ("ellipse", "rectangle", "triangle", "star", "rings", "stripes")


@dataclass(frozen=True)
class ImageSet:
    """Where the drawn images are: one folder per concept, plus an unlabelled kNN pool."""

    labelled: Path  # labelled/<concept folder>/*.png (the folder: source)
    pool: Path  # pool/*.png with caption sidecars (indexed by `letitwag knn build`)
    planted: dict


def folder_name(concept_id: str) -> str:
    """A safe folder name the folder source still matches to the concept (it ignores punctuation)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", concept_id).strip("_") or "concept"


def _draw(rng: np.random.Generator, motif: int, side: int = IMAGE_SIDE):
    """One image of motif ``motif``: a gradient background, noise and 2-4 shapes of the motif."""
    from PIL import Image, ImageDraw

    hue_base = (motif * 47) % 360
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:side, 0:side] / side
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys)
    base = np.stack([ramp * rng.uniform(60, 200), ramp[::-1] * rng.uniform(60, 200),
                     np.full_like(ramp, rng.uniform(30, 220))], axis=-1)
    pixels = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype("uint8")
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    kind = SHAPES[motif % len(SHAPES)]
    for _ in range(int(rng.integers(2, 5))):
        hue = (hue_base + rng.uniform(-25, 25)) % 360
        colour = f"hsl({int(hue)}, {int(rng.uniform(55, 95))}%, {int(rng.uniform(35, 65))}%)"
        x0, y0 = rng.uniform(0, side * 0.6, 2)
        size = rng.uniform(side * 0.2, side * 0.45)
        box = [x0, y0, x0 + size, y0 + size]
        if kind == "ellipse":
            draw.ellipse(box, fill=colour)
        elif kind == "rectangle":
            draw.rectangle(box, fill=colour)
        elif kind == "triangle":
            draw.polygon([(x0, y0 + size), (x0 + size / 2, y0), (x0 + size, y0 + size)], fill=colour)
        elif kind == "star":
            centre = np.array([x0 + size / 2, y0 + size / 2])
            points = [tuple(centre + (size / 2 if i % 2 == 0 else size / 5)
                            * np.array([np.cos(i * np.pi / 5), np.sin(i * np.pi / 5)])) for i in range(10)]
            draw.polygon(points, fill=colour)
        elif kind == "rings":
            for step in range(0, int(size / 2), 5):
                draw.ellipse([x0 + step, y0 + step, x0 + size - step, y0 + size - step], outline=colour, width=2)
        else:
            for step in range(0, int(size), 6):
                draw.line([x0, y0 + step, x0 + size, y0 + step], fill=colour, width=3)
    return image


def draw_image_set(root: str | Path, concepts: ConceptList, per_concept: int, pool_per_concept: int,
                   seed: int = 0) -> ImageSet:
    """Draw ``per_concept`` labelled images per concept and ``pool_per_concept`` pool images each.

    The folder is rebuilt from scratch on every call (same seed, same bytes).
    """
    from PIL import Image

    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    labelled, pool = root / "labelled", root / "pool"
    rng = np.random.default_rng(seed)
    planted: dict = {"license": LICENSE, "exact_duplicate": [], "near_duplicate": [], "corrupt": [], "too_small": []}
    for motif, concept in enumerate(concepts):
        folder = labelled / folder_name(concept.id)
        folder.mkdir(parents=True)
        paths = []
        for number in range(per_concept):
            path = folder / f"{number:03d}.png"
            _draw(rng, motif).save(path)
            paths.append(path)
        if motif == 0:  # the planted problems live in the first concept's folder
            copy = folder / "exact_copy_of_000.png"
            shutil.copyfile(paths[0], copy)
            near = folder / "near_copy_of_001.jpg"
            with Image.open(paths[1]) as original:
                brighter = Image.eval(original.convert("RGB"), lambda value: min(255, value + 6))
                brighter.save(near, quality=80)
            broken = folder / "corrupt.jpg"
            broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
            small = folder / "too_small.png"
            _draw(rng, motif, side=32).save(small)
            planted["exact_duplicate"].append(str(copy))
            planted["near_duplicate"].append(str(near))
            planted["corrupt"].append(str(broken))
            planted["too_small"].append(str(small))
        for number in range(pool_per_concept):
            path = pool / f"{folder_name(concept.id)}_{number:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            _draw(rng, motif).save(path)
            atomic_write_json(path.with_suffix(".json"), {"caption": f"a drawing standing in for {concept.name}",
                                                          "license": LICENSE})
    atomic_write_json(root / "planted.json", planted)
    logger.info("drew %d labelled images per concept for %d concepts and a pool of %d under %s", per_concept,
                len(concepts), pool_per_concept * len(concepts), root)
    return ImageSet(labelled, pool, planted)
