"""A faster forward that is trusted only after it has matched the full forward on real inputs.

Why: the image and text tower shortcuts (``open_clip_cls_tower``, ``open_clip_text_tower``) build on
open_clip internals. Checking each against the model's own forward on the first inputs it sees
means a future open_clip that changes a block falls back to the full forward instead of giving
different features.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)

# Rows compared, and the tolerance on unit-scale features (fp32 rounding of reordered arithmetic
# stays far below it; a real difference does not).
CHECK_ROWS = 2
CHECK_TOLERANCE = 1e-4


class VerifiedShortcut:
    """Callable: ``shortcut(batch)`` once it has matched ``full(batch)`` on the first rows it sees, else ``full``.

    Subclasses implement ``full`` and ``shortcut``; ``what`` names the tower in the warning.
    """

    what = "tower"

    def __init__(self) -> None:
        self.verified: bool | None = None  # None: not checked yet
        self._checking = threading.Lock()  # streams call the tower from several threads: check once

    def full(self, batch):  # pragma: no cover - interface
        raise NotImplementedError

    def shortcut(self, batch):  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, batch):
        if self.verified is None:
            with self._checking:
                if self.verified is None:
                    self.verified = self._matches_full_forward(batch[:CHECK_ROWS])
        return self.shortcut(batch) if self.verified else self.full(batch)

    def _matches_full_forward(self, batch) -> bool:
        full = self.full(batch)
        short = self.shortcut(batch)
        scale = max(1.0, float(full.abs().max()))
        difference = float((full - short).abs().max()) / scale
        if difference > CHECK_TOLERANCE:
            logger.warning("%s: the shortcut differs from the full forward (%.2e); using the full forward",
                           self.what, difference)
            return False
        return True
