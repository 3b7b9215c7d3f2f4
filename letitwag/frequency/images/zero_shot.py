"""The default tagger: zero-shot multi-label tagging with a CLIP-style dual encoder.

Calibrated per-concept probability. Softmax over all concepts is the classifier's answer to
"which ONE concept is this?": probabilities compete, so an image showing a dog on a sofa cannot
be > 0.7 for both, and a concept's count would change when unrelated concepts join the list.
Tagging is multi-label, so each concept gets its own two-way decision against a generic
*background* class described with the same prompts ("a photo of a {object}." ...)::

    p(c | x) = sigmoid( s * (cos(x, t_c) - cos(x, t_bg)) )

which is exactly the two-way softmax between the concept and the background, with ``s`` the
model's own logit scale (100 for trained CLIPs), i.e. the temperature the model was trained to
make its softmax probabilities meaningful with. Properties: independent of the rest of the
concept list (adding concepts never changes another concept's counts), the template style
cancels out (both sides use the same templates), and 0.5 means "as much this concept as a
generic object". With threshold 0.7 (the paper's RAM++ threshold) a concept is present when
its similarity beats the background by ln(7/3)/s (0.0085 for s = 100). This is a heuristic
calibration, not RAM++'s trained tagging head: image counts from it and from RAM++ are not
interchangeable, and provenance records which produced a table.

Concept embeddings are the normalised mean of each concept's normalised prompt embeddings
(open_clip's template ensembling), computed once in the driver and cached on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from letitwag.concepts import ConceptList
from letitwag.frequency.images.prompts import PromptSet, load_prompts
from letitwag.frequency.images.readers import decode_image
from letitwag.io import atomic_write_with
from letitwag.pixels.decoder import DeviceDecoder, byte_views, pack_bytes, resolve_decode

logger = logging.getLogger(__name__)

TEXT_BATCH = 256


class ZeroShotTagger:
    """Multi-label tagger over any ``letitwag.models`` encoder spec (open_clip:..., transformers:...)."""

    def __init__(
        self,
        model: str,
        prompts: str | PromptSet = "ensemble",
        background: str = "object",
        device: str = "cpu",
        precision: str = "fp32",
        cache_dir: str | Path | None = None,
        decode: str = "auto",
    ) -> None:
        self.model_spec = model
        self.prompts = load_prompts(prompts) if isinstance(prompts, str) else prompts
        self.background = background
        self.device = device
        self.precision = precision
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._encoder = None
        self._concept_vectors: np.ndarray | None = None
        self._background_vector: np.ndarray | None = None
        self._model_metadata: dict | None = None
        self._missing_descriptions: list[str] = []
        self._torch_side = None
        self.decode_size: int | None = None
        self.decode = decode  # --decode: auto | cpu | gpu (letitwag.pixels.decoder)
        self.decode_choice = None  # resolved in prepare()
        self._device_decoder = None

    # -- pickling: workers get the concept vectors, not the loaded network --------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_encoder"] = None
        state["_torch_side"] = None
        state["_device_decoder"] = None
        return state

    @property
    def encoder(self):
        if self._encoder is None:
            from letitwag.models import load_encoder

            self._encoder = load_encoder(self.model_spec, device=self.device, precision=self.precision)
        return self._encoder

    # -- Tagger protocol -----------------------------------------------------------------------
    def prepare(self, concepts: ConceptList) -> None:
        self._model_metadata = self.encoder.metadata()
        self.decode_size = _resize_side(self.encoder.preprocess)
        self.decode_choice = resolve_decode(self.decode, self.device, self.encoder.preprocess)
        self._missing_descriptions = self.prompts.missing(concepts)
        if self._missing_descriptions:
            logger.warning("%d concept(s) have no description in %s; using the simple template for them",
                           len(self._missing_descriptions), self.prompts.source)
        cache = self._cache_file(concepts)
        if cache is not None and cache.exists():
            vectors = np.load(cache, allow_pickle=False)
            logger.info("concept embeddings reused from %s", cache)
        else:
            prompt_lists = [self.prompts.texts_for(concept) for concept in concepts]
            prompt_lists.append(self.prompts.background_texts(self.background))
            vectors = self._embed(prompt_lists)
            if cache is not None:
                atomic_write_with(cache, lambda tmp: _save_array(tmp, vectors))
        self._concept_vectors, self._background_vector = vectors[:-1], vectors[-1]

    def preprocess(self, image: Any) -> Any:
        return self.encoder.preprocess(image)

    @property
    def decodes_on_device(self) -> bool:
        """Whether the runner hands baseline JPEGs to ``decode_batch`` (``--decode`` resolved to gpu)."""
        return self.decode_choice is not None and self.decode_choice.mode == "gpu"

    def decode_batch(self, datas: Sequence[bytes]):
        """JPEG bytes -> (model inputs on the device for the decodable ones, ``ok`` mask): decoded in one
        batch on the device, an image it cannot decode on the CPU path (``decode_image`` + preprocess)."""
        if self._device_decoder is None:
            self._device_decoder = DeviceDecoder(self.decode_choice.recipe, self.device, self._cpu_input)
        blob, offsets = pack_bytes(datas)
        if str(self.device).startswith("cuda"):
            blob = blob.pin_memory()  # nvJPEG copies the bitstreams from pinned memory asynchronously
        return self._device_decoder(byte_views(blob, offsets))

    def _cpu_input(self, data: bytes):
        image, _ = decode_image(data, self.decode_size)
        return None if image is None else self.preprocess(image)

    def probabilities(self, batch: Sequence[Any]) -> np.ndarray:
        import torch

        if self._concept_vectors is None:
            raise RuntimeError("ZeroShotTagger.prepare(concepts) must run before tagging")
        concepts, background = self._device_vectors()
        images = self.encoder.encode_images(batch if isinstance(batch, torch.Tensor) else torch.stack(list(batch)))
        with torch.inference_mode():
            margin = images @ concepts.T - (images @ background)[:, None]
            return torch.sigmoid(self.encoder.logit_scale * margin).cpu().numpy()

    def metadata(self) -> dict:
        return {
            "tagger": "zero-shot",
            "model": self._model_metadata or {"spec": self.model_spec},
            "prompts": {"source": self.prompts.source, "sha256": self.prompts.digest(),
                        "num_templates": len(self.prompts.templates) or None,
                        "concepts_without_descriptions": self._missing_descriptions},
            "calibration": "sigmoid(logit_scale * (cos(image, concept) - cos(image, background)))",
            "background": self.background,
            "precision": self.precision,
            "decode_size": self.decode_size,
            "decode": self.decode_choice.describe() if self.decode_choice is not None else {"mode": self.decode},
        }

    # -- helpers -------------------------------------------------------------------------------
    def _device_vectors(self):
        import torch

        if self._torch_side is None:
            self._torch_side = (
                torch.from_numpy(self._concept_vectors).to(self.encoder.device),
                torch.from_numpy(self._background_vector).to(self.encoder.device),
            )
        return self._torch_side

    def _embed(self, prompt_lists: list[list[str]]) -> np.ndarray:
        """Normalised mean of normalised prompt embeddings, per list (template ensembling)."""
        import torch

        flat = [text for texts in prompt_lists for text in texts]
        chunks = []
        for start in tqdm(range(0, len(flat), TEXT_BATCH), desc="encoding concept prompts", unit="batch"):
            chunks.append(self.encoder.encode_texts(flat[start : start + TEXT_BATCH]).float().cpu())
        encoded = torch.cat(chunks)
        vectors, position = [], 0
        for texts in prompt_lists:
            mean = encoded[position : position + len(texts)].mean(dim=0)
            vectors.append(torch.nn.functional.normalize(mean, dim=0))
            position += len(texts)
        return torch.stack(vectors).numpy().astype(np.float32)

    def _cache_file(self, concepts: ConceptList) -> Path | None:
        if self.cache_dir is None:
            return None
        key = json.dumps(
            [self._model_metadata, self.prompts.digest(), self.background, self.precision,
             [(c.id, c.name) for c in concepts]],
            sort_keys=True, default=str,
        )
        return self.cache_dir / f"concept-vectors-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"


def _resize_side(preprocess) -> int | None:
    """The side a torchvision ``Resize`` in the encoder's preprocessing scales to (None if unknown)."""
    for transform in getattr(preprocess, "transforms", []):
        size = getattr(transform, "size", None)
        if type(transform).__name__ == "Resize" and size is not None:
            return int(size) if isinstance(size, int) else int(max(size))
    return None


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
