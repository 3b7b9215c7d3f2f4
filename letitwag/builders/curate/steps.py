"""What a curation step returns: rejected rows with reasons, and optional per-row scores."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa


@dataclass
class StepOutcome:
    """Rows (index of the run's frame) a step rejects, why, the kept twin, and recorded scores."""

    rejected: dict[int, str] = field(default_factory=dict)
    duplicate_of: dict[int, str] = field(default_factory=dict)
    scores: dict[str, dict[int, float]] = field(default_factory=dict)

    def reject(self, row: int, reason: str, duplicate_of: str | None = None) -> None:
        row = int(row)
        if row not in self.rejected:
            self.rejected[row] = reason
            if duplicate_of is not None:
                self.duplicate_of[row] = duplicate_of

    def to_table(self) -> pa.Table:
        """One row per rejected or scored frame row (the step's resume record)."""
        rows = sorted(set(self.rejected).union(*[set(v) for v in self.scores.values()]))
        columns = {
            "row": pa.array(rows, pa.int64()),
            "reason": pa.array([self.rejected.get(r) for r in rows], pa.string()),
            "duplicate_of": pa.array([self.duplicate_of.get(r) for r in rows], pa.string()),
        }
        for name, values in sorted(self.scores.items()):
            columns[name] = pa.array([values.get(r) for r in rows], pa.float32())
        return pa.table(columns)

    @classmethod
    def from_table(cls, table: pa.Table) -> "StepOutcome":
        frame = table.to_pandas()
        outcome = cls()
        for row, reason, twin in zip(frame["row"], frame["reason"], frame["duplicate_of"]):
            if isinstance(reason, str):
                outcome.rejected[int(row)] = reason
                if isinstance(twin, str):
                    outcome.duplicate_of[int(row)] = twin
        for name in frame.columns.difference(["row", "reason", "duplicate_of"]):
            outcome.scores[name] = {int(r): float(v) for r, v in zip(frame["row"], frame[name]) if pd.notna(v)}
        return outcome
