"""What a shard is: a stable key, a picklable description of what to read, and a fingerprint.

Why three fields: the *key* names the shard's files on disk (so it must not change between
runs over the same input), the *spec* travels to a worker process or a Ray node and tells the
map function what to read, and the *fingerprint* says whether a stored partial still answers
the same question (same input bytes, same row range, same parameters). A partial whose
fingerprint differs is stale and is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Shard:
    """One unit of work: ``spec`` is handed to the map function, ``key`` names its files."""

    key: str
    spec: Any
    fingerprint: str


def fingerprint(*parts: Any) -> str:
    """A sha256 over JSON-able parts (dict keys sorted), for shard and parameter fingerprints."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def file_identity(path: str | Path) -> dict:
    """Path, size and modification time of a file: cheap, and changes whenever its content does."""
    resolved = Path(path).resolve()
    stat = os.stat(resolved)
    return {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def shard_key(label: str, *identity: Any) -> str:
    """A file-system safe key: a readable label plus a short hash of what makes it unique."""
    readable = _UNSAFE.sub("_", label).strip("._")[:60] or "shard"
    return f"{readable}.{fingerprint(*identity)[:16]}"
