"""The tagger plug-in contract: image in, one presence probability per concept out.

Why a protocol and not a base class: any object with these four methods can tag (the default
open_clip zero-shot tagger, the RAM++ adapter, a user's own model, a deterministic fake in the
tests), and the runner applies the threshold itself, so every tagger is thresholded the same
way as the paper: a concept is present iff its probability is strictly greater than the
threshold (0.7 by default).

Optional attribute ``decode_size`` (int): the model's input side; when set, JPEGs are decoded
at a reduced DCT scale that stays at least that large (faster, the model downsamples anyway).

A tagger travels to worker processes by pickling, so it must be picklable after ``prepare``;
heavy state (a loaded network) should be dropped in ``__getstate__`` and rebuilt lazily.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

from letitwag.concepts import ConceptList


@runtime_checkable
class Tagger(Protocol):
    def prepare(self, concepts: ConceptList) -> None:
        """Build the concept side once, in the driver (e.g. encode the concepts' prompts)."""

    def preprocess(self, image: Any) -> Any:
        """RGB PIL image -> the model's input for one image."""

    def probabilities(self, batch: Sequence[Any]) -> Any:
        """Preprocessed images -> array ``[len(batch), len(concepts)]`` of probabilities in [0, 1]."""

    def metadata(self) -> dict:
        """JSON-able description for provenance (model, prompts, calibration); also fingerprints shards."""
