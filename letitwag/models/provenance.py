"""Where a model's weights came from: resolved file, Hub revision, plumbing-model card.

Why: results must say exactly which weights produced them, and the caches must not reuse
features after a checkpoint file changed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

PLUMBING_CARD = "letitwag_model_card.json"
_SNAPSHOT = re.compile(r"/snapshots/([0-9a-f]{40})(/|$)")


def hub_revision(path: str | Path) -> str | None:
    """The commit hash of a file inside the Hugging Face cache (``.../snapshots/<sha>/...``)."""
    match = _SNAPSHOT.search(str(path))
    return match.group(1) if match else None


def file_identity(path: str | Path) -> dict:
    """Resolved path plus size and mtime, enough to notice a replaced checkpoint cheaply."""
    resolved = Path(path).expanduser().resolve()
    info = {"resolved_checkpoint": str(resolved), "revision": hub_revision(path)}
    if resolved.exists():
        stat = resolved.stat()
        info["checkpoint_bytes"] = stat.st_size if resolved.is_file() else None
        info["checkpoint_mtime_ns"] = stat.st_mtime_ns
    return info


def plumbing_card(folder: str | Path) -> dict:
    """The card ``models/tiny.py`` writes beside random-weight plumbing models (empty if none)."""
    card = Path(folder) / PLUMBING_CARD
    return json.loads(card.read_text()) if card.is_file() else {}
