"""Tokenise a batch of captions into (row, word id) arrays: ``normalize_text`` then split.

Only the words a matcher cares about get an id (its ``TokenVocabulary``); every other token is
-1 but still occupies its position, so adjacency (what phrase matching needs) is preserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from letitwag.concepts import normalize_text


class TokenVocabulary:
    """Surface form -> word id (several forms may share an id: the forms of one lemma)."""

    def __init__(self, ids: dict[str, int]) -> None:
        self.ids = dict(ids)


@dataclass
class Tokens:
    rows: np.ndarray  # int64 [n_tokens]: caption row of each token, non-decreasing
    word_ids: np.ndarray  # int64 [n_tokens]: vocabulary id, -1 for other words


def _as_pylist(captions: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> list[str | None]:
    if isinstance(captions, (pa.Array, pa.ChunkedArray)):
        return captions.to_pylist()
    return list(captions)


def tokenize(captions: pa.Array | pa.ChunkedArray | Sequence[str | None], vocabulary: TokenVocabulary) -> Tokens:
    """Tokens of every caption in order; null and empty captions contribute none."""
    rows: list[int] = []
    word_ids: list[int] = []
    lookup = vocabulary.ids.get
    for row, caption in enumerate(_as_pylist(captions)):
        if not caption:
            continue
        words = normalize_text(caption).split(" ")
        if words == [""]:
            continue
        rows.extend([row] * len(words))
        word_ids.extend(lookup(word, -1) for word in words)
    return Tokens(np.array(rows, dtype=np.int64), np.array(word_ids, dtype=np.int64))
