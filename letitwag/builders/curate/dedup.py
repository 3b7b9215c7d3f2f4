"""Steps 2 and 3: exact duplicates (bytes or pixels) and pHash near-duplicates within a concept.

Which copy is kept is decided by one deterministic priority, never by file-system or hash
order: more pixels first, then the larger file (less compression), then the smaller
candidate id. The paper kept whichever copy imagededup listed first.

An image that appears (same pixels) under two *different* concepts has an ambiguous label:
every copy is rejected rather than guessing which concept it belongs to.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix

from letitwag.builders.curate.phash import from_hex, pairs_within
from letitwag.builders.curate.steps import StepOutcome


def priority_order(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted so the copy to keep comes first."""
    keyed = frame.assign(_area=-(frame["width"].astype("int64") * frame["height"].astype("int64")),
                         _size=-frame["size_bytes"].astype("int64"))
    return keyed.sort_values(["_area", "_size", "candidate_id"], kind="stable").drop(columns=["_area", "_size"])


def exact_duplicates(frame: pd.DataFrame) -> StepOutcome:
    """Reject byte- or pixel-identical copies (keep the priority-first per concept; all across concepts)."""
    outcome = StepOutcome()
    ordered = priority_order(frame)
    spread = ordered.groupby("pixel_sha256")["concept_id"].nunique()
    shared = ordered[ordered["pixel_sha256"].isin(spread.index[spread > 1])]
    for pixels, copies in shared.groupby("pixel_sha256", sort=True):
        concepts = sorted(set(copies["concept_id"]))
        for row in copies.index:
            outcome.reject(row, f"same image under several concepts ({', '.join(concepts[:5])}): ambiguous label")
    alive = ordered.drop(index=list(outcome.rejected))
    for key, label in (("sha256", "bytes"), ("pixel_sha256", "pixels")):
        first = alive.groupby(["concept_id", key], sort=False)["candidate_id"].transform("first")
        twins = alive[first != alive["candidate_id"]]
        for row, kept in zip(twins.index, first[twins.index]):
            outcome.reject(row, f"exact duplicate ({label}) of {kept}", duplicate_of=kept)
        alive = alive.drop(index=twins.index)
    return outcome


def near_duplicates(frame: pd.DataFrame, max_distance: int) -> StepOutcome:
    """Within each concept, greedily keep images in priority order and reject their pHash neighbours."""
    outcome = StepOutcome()
    # one stable sort of all rows: grouping keeps that order, which is each group's priority order
    for _, ordered in priority_order(frame).groupby("concept_id", sort=True):
        hashes = from_hex(ordered["phash"])
        first, second, distance = pairs_within(hashes, max_distance)
        n = len(ordered)
        both = np.concatenate([first, second]), np.concatenate([second, first])
        adjacency = coo_matrix((np.concatenate([distance, distance]).astype(np.int16) + 1, both), shape=(n, n)).tocsr()
        removed = np.zeros(n, dtype=bool)
        ids = ordered["candidate_id"].to_numpy()
        rows = ordered.index.to_numpy()
        for position in range(n):  # priority order: lower position = kept first
            if removed[position]:
                continue
            start, end = adjacency.indptr[position], adjacency.indptr[position + 1]
            for neighbour, weight in zip(adjacency.indices[start:end], adjacency.data[start:end]):
                if not removed[neighbour] and neighbour > position:
                    removed[neighbour] = True
                    outcome.reject(rows[neighbour], f"near duplicate of {ids[position]} (pHash distance "
                                   f"{int(weight) - 1} <= {max_distance})", duplicate_of=ids[position])
    return outcome
