"""Candidate and rejection rows as every collect source produces them.

Why shared: the folder, URL and kNN sources must fill the candidate manifest
(``letitwag.builders.manifest``) the same way — size, sha256, pixel size from the header —
and record what they could not use in one rejection table, so a user sees every URL or file
that did not make it and why.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pyarrow as pa

from letitwag.io import atomic_write_bytes

REJECTION_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("concept_id", pa.string()),
        ("item", pa.string()),  # URL, file path or tar member
        ("status", pa.string()),  # e.g. failed_to_download, unknown_concept, not_an_image
        ("error", pa.string()),
    ]
)


def image_size(data: bytes | None = None, path: Path | None = None) -> tuple[int | None, int | None]:
    """Width/height from the image header (no full decode); ``(None, None)`` if unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as image:
            return image.width, image.height
    except Exception:  # header problems are curate's to judge; collect only records the size
        return None, None


def manifest_path(path: Path, manifest_dir: Path) -> str:
    """``path`` relative to the manifest directory when inside it (portable), else absolute."""
    path, manifest_dir = path.resolve(), manifest_dir.resolve()
    return os.path.relpath(path, manifest_dir) if path.is_relative_to(manifest_dir) else str(path)


def file_candidate(path: Path, manifest_dir: Path, **fields) -> dict:
    """A candidate row for an image file (read once for its sha256 and size)."""
    data = path.read_bytes()
    width, height = image_size(data)
    row = {
        "image": {"bytes": None, "path": manifest_path(path, manifest_dir)},
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": width,
        "height": height,
    }
    row.update(fields)
    return row


def store_bytes(data: bytes, folder: Path, extension: str) -> Path:
    """Write image bytes content-addressed (``folder/ab/abcdef....ext``), atomically; safe names only."""
    digest = hashlib.sha256(data).hexdigest()
    extension = extension.lower() if extension.lower().lstrip(".").isalnum() else ".img"
    path = folder / digest[:2] / f"{digest}{extension}"
    if not path.exists():
        atomic_write_bytes(path, data)
    return path


def rejection(source: str, concept_id: str | None, item: str, status: str, error: str) -> dict:
    return {"source": source, "concept_id": concept_id, "item": item, "status": status, "error": error}
