"""Where finished shards live: one partial file plus one completion marker per shard.

The driver (never a worker) writes here, so a Ray cluster needs no shared storage. Order of
writes: the partial atomically, then the marker atomically. A kill between the two leaves a
partial without a marker, which counts as not done; a marker whose fingerprint, size or sha256
does not match its partial counts as not done either. So a shard is either fully reusable or
redone, never half-trusted. (datatrove keeps completion markers the same way.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
from pathlib import Path
from typing import Iterator

from letitwag.engine.shards import Shard
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

MARKER_FORMAT = "letitwag.shard-marker/1"


def write_failure_reason(error: OSError) -> str:
    """A few words for a failed write: "disk full" for ENOSPC, else the system's reason."""
    return "disk full" if error.errno == errno.ENOSPC else (error.strerror or str(error))


class ShardStore:
    """Partials and completion markers of one job under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def partial_path(self, key: str) -> Path:
        return self.root / f"{key}.partial"

    def marker_path(self, key: str) -> Path:
        return self.root / f"{key}.done"

    def is_complete(self, shard: Shard) -> bool:
        """True when the marker matches the shard's fingerprint and the partial's bytes."""
        return self.load_complete(shard) is not None

    def load_complete(self, shard: Shard) -> bytes | None:
        """The shard's partial if it is complete and current, else ``None`` (stale, torn or missing)."""
        marker = self._read_marker(shard.key)
        if marker is None or marker.get("fingerprint") != shard.fingerprint:
            return None
        partial = self.partial_path(shard.key)
        try:
            if partial.stat().st_size != marker.get("bytes"):
                return None
            data = partial.read_bytes()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == marker.get("sha256") else None

    def save(self, shard: Shard, data: bytes) -> None:
        """Write the partial, then its marker; a failure (disk full, ...) leaves no marker."""
        marker = {
            "format": MARKER_FORMAT,
            "key": shard.key,
            "fingerprint": shard.fingerprint,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        try:
            self.marker_path(shard.key).unlink(missing_ok=True)
            atomic_write_bytes(self.partial_path(shard.key), data)
            atomic_write_json(self.marker_path(shard.key), marker)
        except OSError as error:
            self.marker_path(shard.key).unlink(missing_ok=True)
            raise UserInputError(
                f"{self.root}: cannot store shard {shard.key} ({write_failure_reason(error)}); free space or fix "
                "permissions and rerun the same command: finished shards are kept"
            ) from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the store so two runs never write the same shards at once."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserInputError(
                    f"{self.root}: another run is writing these shards; wait for it or use another --out"
                ) from None
            self._remove_leftover_temporaries()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _remove_leftover_temporaries(self) -> None:
        """Temporary files of a killed run are garbage: nothing ever reads them."""
        for leftover in self.root.glob(".*.tmp"):
            logger.debug("removing leftover temporary file %s", leftover)
            leftover.unlink(missing_ok=True)

    def _read_marker(self, key: str) -> dict | None:
        try:
            marker = json.loads(self.marker_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) and marker.get("format") == MARKER_FORMAT else None

