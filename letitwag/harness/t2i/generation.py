"""Seeded, resumable image generation: one folder of PNGs and one completion record per concept.

Why per-concept records: generation is the expensive part of a T2I run. A concept's record
(``images/NNNNN/done.json``) is written atomically only after all its PNGs are on disk, so a
run killed with ``kill -9`` regenerates at most the concept it was working on; a rerun checks
each record (settings digest + PNG hashes) and skips the concept. Every image has its own seed,
derived from (``--seed``, concept id, prompt, image index), so an image does not depend on the
batch it was generated in, the ``--limit`` subset, or the concepts before it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from letitwag.errors import UserInputError
from letitwag.harness.batching import AdaptiveBatcher
from letitwag.harness.cache import digest
from letitwag.io import atomic_write_json, atomic_write_with, file_sha256
from letitwag.models.base import ModelOutputError

logger = logging.getLogger(__name__)

RECORD_FORMAT = "letitwag.t2i-concept/1"
IMAGES_DIR = "images"
RECORD_NAME = "done.json"


def image_seed(seed: int, concept_id: str, prompt: str, image_index: int) -> int:
    """A 31-bit seed from sha256 of ``[seed, concept_id, prompt, image_index]`` (JSON, UTF-8)."""
    payload = json.dumps([int(seed), concept_id, prompt, int(image_index)], ensure_ascii=False).encode("utf-8")
    return int.from_bytes(hashlib.sha256(payload).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class GeneratedImage:
    """One image of a concept; ``path`` is relative to the run directory."""

    concept_index: int
    concept_id: str
    prompt_index: int
    prompt: str
    image_index: int
    seed: int
    path: str
    sha256: str = ""
    blacked_out: bool = False


def plan_concept(concept_index: int, concept_id: str, prompts: list[str], images_per_prompt: int, seed: int) -> list[GeneratedImage]:
    folder = f"{IMAGES_DIR}/{concept_index:05d}"
    return [
        GeneratedImage(concept_index, concept_id, p, prompt, i, image_seed(seed, concept_id, prompt, i),
                       f"{folder}/{p:03d}-{i:03d}.png")
        for p, prompt in enumerate(prompts)
        for i in range(images_per_prompt)
    ]


def generation_key(generator_metadata: dict, prompts: list[str], images_per_prompt: int, seed: int, options: dict) -> str:
    """Everything that determines a concept's images; a record with another key is not reused."""
    return digest({"generator": generator_metadata, "prompts": prompts, "images_per_prompt": images_per_prompt,
                   "seed": seed, "generation_options": options})


def _check_image(image, planned: GeneratedImage, spec: str):
    """An RGB image with pixels; anything else is the generator's fault, said in one line."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise ModelOutputError(f"{spec}: generate() returned {type(image).__name__} for prompt {planned.prompt!r}; expected a PIL image")
    if image.width < 1 or image.height < 1:
        raise ModelOutputError(f"{spec}: generate() returned an empty {image.width}x{image.height} image for {planned.prompt!r}")
    return image.convert("RGB")


def _save_png(image, planned: GeneratedImage, out_dir: Path) -> GeneratedImage:
    """Write the PNG atomically with its prompt and seed as text chunks; returns the entry with its hash."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("prompt", planned.prompt)
    info.add_text("concept_id", planned.concept_id)
    info.add_text("seed", str(planned.seed))
    target = out_dir / planned.path
    atomic_write_with(target, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))
    # HEIM leaves blacked-out images (a safety filter's output, or NaN decoded to zeros) out of CLIPScore.
    blacked_out = image.getbbox() is None
    return GeneratedImage(**{**asdict(planned), "sha256": file_sha256(target), "blacked_out": blacked_out})


class ConceptRecords:
    """Completion records of one run directory (``images/NNNNN/done.json``)."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)

    def path(self, concept_index: int) -> Path:
        return self.out_dir / IMAGES_DIR / f"{concept_index:05d}" / RECORD_NAME

    def load(self, concept_index: int, key: str) -> list[GeneratedImage] | None:
        """The concept's images if its record is complete and matches ``key``; None to (re)generate."""
        path = self.path(concept_index)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            images = [GeneratedImage(**entry) for entry in record["images"]]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as error:
            logger.warning("%s: unreadable completion record (%s); regenerating the concept", path, error)
            return None
        if record.get("generation_key") != key:
            raise UserInputError(
                f"{path}: images in {self.out_dir} were generated with other settings (model, prompts, seed, "
                "--images-per-prompt or --generation-options); use another --out or delete that folder"
            )
        for image in images:
            target = self.out_dir / image.path
            if not target.is_file() or file_sha256(target) != image.sha256:
                logger.warning("%s changed or is missing; regenerating concept %s", target, image.concept_id)
                return None
        return images

    def save(self, concept_index: int, key: str, images: list[GeneratedImage]) -> None:
        atomic_write_json(self.path(concept_index), {
            "format": RECORD_FORMAT, "generation_key": key, "images": [asdict(image) for image in images],
        })


def generate_concept(generator, planned: list[GeneratedImage], out_dir: Path, batch_size: int, options: dict) -> list[GeneratedImage]:
    """Generate and save every planned image of one concept, in batches (halved on out-of-memory)."""
    batcher = AdaptiveBatcher(batch_size, "generated images")

    def generate(batch: list[GeneratedImage]) -> list[GeneratedImage]:
        images = generator.generate([p.prompt for p in batch], seed=[p.seed for p in batch], **options)
        if len(images) != len(batch):
            raise ModelOutputError(f"{generator.spec}: generate() returned {len(images)} images for {len(batch)} prompts")
        return [_save_png(_check_image(image, p, generator.spec), p, out_dir) for image, p in zip(images, batch)]

    return [entry for part in batcher.run(generate, planned) for entry in part]


def generate_all(generator, concept_indices, class_ids: list[str], prompts: list[list[str]], out_dir: Path,
                 *, images_per_prompt: int, seed: int, batch_size: int, options: dict) -> tuple[list[GeneratedImage], dict]:
    """Generate (or reuse) the images of the selected concepts; returns them and resume counts."""
    from tqdm import tqdm

    records = ConceptRecords(out_dir)
    metadata = generator.metadata()
    keys = {int(c): generation_key(metadata, prompts[int(c)], images_per_prompt, seed, options) for c in concept_indices}
    # Every existing record is checked before anything is generated: a settings clash stops the run untouched.
    finished = {c: records.load(c, key) for c, key in keys.items()}
    images: list[GeneratedImage] = []
    counts = {"concepts_reused": sum(done is not None for done in finished.values()), "concepts_generated": 0}
    for concept_index, done in tqdm(finished.items(), desc="t2i concepts", unit="concept"):
        if done is None:
            planned = plan_concept(concept_index, class_ids[concept_index], prompts[concept_index], images_per_prompt, seed)
            done = generate_concept(generator, planned, out_dir, batch_size, options)
            records.save(concept_index, keys[concept_index], done)
            counts["concepts_generated"] += 1
        images.extend(done)
    logger.info("t2i: %d concepts generated, %d reused from %s", counts["concepts_generated"], counts["concepts_reused"], out_dir)
    return images, counts
