"""``letitwag knn build``: embed an image folder into a servable index, resumably.

Why chunks: embedding a large folder takes hours on CPU; a ``kill -9`` must lose at most the
chunk in flight. The plan (the sorted file list and the model) is fixed on the first run in
``OUT/.build/plan.json``; each chunk's vectors land atomically in ``OUT/.build/chunk-NNNNN.npz``
(its existence is the completion marker); a rerun embeds only the missing chunks, then writes
the index (``letitwag.builders.knn.store``) and removes ``.build``.

Captions/URLs/licenses come from sidecar files beside each image, as img2dataset writes them:
``NAME.txt`` (caption) and ``NAME.json`` (``caption``, ``url``, ``license`` keys).
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json, atomic_write_with, text_sha256

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
BUILD_DIR = ".build"


def list_images(images_dir: str | Path) -> list[Path]:
    """Image files under ``images_dir`` (recursive), sorted by relative path for a stable order."""
    root = Path(images_dir)
    if not root.is_dir():
        raise UserInputError(f"{root}: no such image folder; give --images a directory of images")
    files = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise UserInputError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    return files


def sidecar_metadata(image_path: Path) -> dict:
    """Caption/url/license from ``NAME.json`` / ``NAME.txt`` beside an image (img2dataset layout)."""
    record: dict = {"caption": None, "url": None, "license": None}
    text_file, json_file = image_path.with_suffix(".txt"), image_path.with_suffix(".json")
    if text_file.is_file():
        record["caption"] = text_file.read_text(encoding="utf-8", errors="replace").strip() or None
    if json_file.is_file():
        try:
            data = json.loads(json_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.warning("%s: unreadable sidecar JSON, ignored", json_file)
            data = {}
        if isinstance(data, dict):
            for key in record:
                if isinstance(data.get(key), str) and record[key] is None:
                    record[key] = data[key]
    return record


def _load_pixels(encoder, path: Path):
    """Preprocessed pixels or the reason the image cannot be used."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return encoder.preprocess(image.convert("RGB")), ""
    except Exception as error:  # any decoder failure is a recorded skip, not a crash
        return None, f"{type(error).__name__}: {error}"


class _Plan:
    """The fixed work of one build: files, model, chunking; checked against reruns."""

    def __init__(self, out: Path, images_dir: Path, model: str, chunk_size: int) -> None:
        self.work = out / BUILD_DIR
        self.files = [p.resolve() for p in list_images(images_dir)]
        self.record = {
            "images_dir": str(images_dir.resolve()),
            "model": model,
            "chunk_size": chunk_size,
            "files": len(self.files),
            "files_sha256": text_sha256("\n".join(str(p) for p in self.files)),
        }
        plan_path = self.work / "plan.json"
        if plan_path.exists():
            previous = json.loads(plan_path.read_text(encoding="utf-8"))
            if previous != self.record:
                changed = sorted(k for k in self.record if previous.get(k) != self.record[k])
                raise UserInputError(
                    f"{out}: an unfinished build with different {', '.join(changed)} is there; "
                    f"use another --out or delete {self.work} to start over"
                )
        else:
            atomic_write_json(plan_path, self.record)
        self.chunk_size = chunk_size

    @property
    def chunk_count(self) -> int:
        return (len(self.files) + self.chunk_size - 1) // self.chunk_size

    def chunk_path(self, number: int) -> Path:
        return self.work / f"chunk-{number:05d}.npz"

    def chunk_files(self, number: int) -> list[Path]:
        return self.files[number * self.chunk_size : (number + 1) * self.chunk_size]


def _embed_chunk(encoder, files: list[Path], batch_size: int, pool: ThreadPoolExecutor) -> dict:
    import torch

    vectors, errors = [], []
    for start in range(0, len(files), batch_size):
        loaded = list(pool.map(lambda p: _load_pixels(encoder, p), files[start : start + batch_size]))
        pixels = [pix for pix, _ in loaded if pix is not None]
        errors.extend(reason for _, reason in loaded)
        if pixels:
            vectors.append(encoder.encode_images(torch.stack(pixels)).cpu().numpy())
    dim = vectors[0].shape[1] if vectors else 0
    return {
        "vectors": np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32),
        "errors": np.array(errors, dtype=str),
    }


def build_index(images_dir: str | Path, model: str, out: str | Path, *, batch_size: int = 64,
                chunk_size: int = 1024, device: str = "cpu", precision: str = "fp32",
                threads: int = 2) -> Path:
    """Embed every image under ``images_dir`` with ``model`` into the index directory ``out``.

    Unreadable images are skipped and listed in ``OUT/skipped.json``. Rerunning after a kill
    resumes; rerunning a finished build returns at once.
    """
    from tqdm import tqdm

    from letitwag.builders.knn.store import CONFIG_FILE, write_index
    from letitwag.models import load_encoder

    images_dir, out = Path(images_dir), Path(out)
    if (out / CONFIG_FILE).exists() and not (out / BUILD_DIR).exists():
        config = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
        if config.get("model") == model and config.get("images_dir") == str(images_dir.resolve()):
            logger.info("%s is already built (%d vectors); nothing to do", out, config.get("count", 0))
            return out
        raise UserInputError(f"{out}: already holds an index of another folder/model; give another --out")
    plan = _Plan(out, images_dir, model, chunk_size)
    encoder = load_encoder(model, device=device, precision=precision)
    todo = [n for n in range(plan.chunk_count) if not plan.chunk_path(n).exists()]
    if len(todo) < plan.chunk_count:
        logger.info("resuming: %d of %d chunks already embedded", plan.chunk_count - len(todo), plan.chunk_count)
    with ThreadPoolExecutor(threads) as pool:
        for number in tqdm(todo, desc="embedding chunks", unit="chunk"):
            arrays = _embed_chunk(encoder, plan.chunk_files(number), batch_size, pool)
            atomic_write_with(plan.chunk_path(number), lambda tmp: _save_npz(tmp, arrays))
    _assemble(plan, out, encoder, write_index)
    shutil.rmtree(plan.work, ignore_errors=True)
    return out


def _save_npz(path: Path, arrays: dict) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _assemble(plan: _Plan, out: Path, encoder, write_index) -> None:
    vectors, kept, skipped = [], [], []
    for number in range(plan.chunk_count):
        with np.load(plan.chunk_path(number), allow_pickle=False) as chunk:
            if len(chunk["vectors"]):  # a chunk of only undecodable images has none
                vectors.append(chunk["vectors"])
            for path, reason in zip(plan.chunk_files(number), chunk["errors"].tolist()):
                if reason:
                    skipped.append({"image_path": str(path), "error": reason})
                else:
                    kept.append(path)
    if not kept:
        raise UserInputError(f"{plan.record['images_dir']}: none of the {len(plan.files)} images could be decoded")
    rows = [dict(image_path=str(path), **sidecar_metadata(path)) for path in kept]
    metadata = pa.Table.from_pylist(rows)
    atomic_write_json(out / "skipped.json", skipped)
    config = {
        "model": plan.record["model"],
        "model_metadata": encoder.metadata(),
        "images_dir": plan.record["images_dir"],
        "skipped": len(skipped),
        "synthetic": False,
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_index(out, np.concatenate(vectors), metadata, config)
    if skipped:
        logger.warning("%d image(s) could not be decoded and were skipped; see %s", len(skipped), out / "skipped.json")
