"""The kNN query logic behind ``/knn-service``, independent of HTTP.

Why separate from the server: the query semantics (which input wins, de-duplication, how many
results, what is unsupported) are the protocol; tests and other callers use them without a
socket, and the ASGI layer stays a thin shell of status codes and size limits.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from letitwag.builders.knn.batching import MicroBatcher
from letitwag.builders.knn.protocol import DEDUP_THRESHOLD, UNSUPPORTED_FLAGS, KnnRequest
from letitwag.builders.knn.store import KnnIndex, set_search_threads

logger = logging.getLogger(__name__)


class KnnQueryError(Exception):
    """A request the service refuses; ``status`` is the HTTP status (always 4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServiceLimits:
    """Bounds that keep one request from hurting the others."""

    max_results: int = 10_000
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 64_000_000
    image_url_timeout: float = 10.0
    text_cache_size: int = 65_536
    max_batch: int = 64
    search_threads: int = 1


def near_duplicate_positions(vectors: np.ndarray, threshold: float = DEDUP_THRESHOLD) -> np.ndarray:
    """Positions to drop: all but the first member of each group of near-identical vectors.

    clip-retrieval's rule: link results whose cosine is >= ``threshold``, take connected
    components, keep the first (best-ranked) result of each. Components are found by
    propagating the smallest position along links until nothing changes (a few numpy steps
    for the tens of results a query returns).
    """
    count = len(vectors)
    if count < 2:
        return np.zeros(0, dtype=np.int64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1, norms)
    linked = (unit @ unit.T) >= threshold
    np.fill_diagonal(linked, True)
    labels = np.arange(count)
    while True:
        smallest = np.where(linked, labels[None, :], count).min(axis=1)
        if np.array_equal(smallest, labels):
            break
        labels = smallest
    return np.flatnonzero(labels != np.arange(count))


def recall_summary(config: dict) -> dict:
    """``{"k", "recall_at_k", "exact", "queries"}`` from an index's ``index.json`` (exact indices: 1.0)."""
    recall = config.get("recall") or {}
    if recall.get("exact") or str(config.get("index_type", "flat")).lower() == "flat":
        return {"exact": True, "k": recall.get("k"), "recall_at_k": 1.0}
    sets = recall.get("sets") or {}
    name = next(iter(sets), None)
    return {"exact": False, "k": recall.get("k"), "recall_at_k": sets[name]["recall_at_k"] if name else None,
            "queries": f"{sets[name]['queries']} ({sets[name]['source']})" if name else None}


class _LruCache:
    """A small thread-safe LRU for text embeddings (queries built from templates repeat a lot)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class _EncoderRunner:
    """One encoder with micro-batched text and image forwards and a text-embedding cache."""

    def __init__(self, encoder, limits: ServiceLimits) -> None:
        self.encoder = encoder
        self._cache = _LruCache(limits.text_cache_size)
        self._texts = MicroBatcher(self._encode_texts, limits.max_batch, "knn-text")
        self._images = MicroBatcher(self._encode_images, limits.max_batch, "knn-image")

    def _encode_texts(self, texts: list[str]) -> list[np.ndarray]:
        return list(self.encoder.encode_texts(texts).cpu().numpy())

    def _encode_images(self, pixels: list) -> list[np.ndarray]:
        import torch

        return list(self.encoder.encode_images(torch.stack(pixels)).cpu().numpy())

    async def text(self, text: str) -> np.ndarray:
        vector = self._cache.get(text)
        if vector is None:
            vector = await self._texts.run(text)
            self._cache.put(text, vector)
        return vector

    async def image(self, pixels) -> np.ndarray:
        return await self._images.run(pixels)

    def close(self) -> None:
        self._texts.close()
        self._images.close()


class KnnService:
    """Answers clip-retrieval ``/knn-service`` requests over one or more opened indices.

    ``encoders`` maps a model spec to a loaded ``letitwag.models.Encoder``; an index whose model
    is not loaded answers only ``embedding_input`` queries.
    """

    def __init__(self, indices: dict[str, KnnIndex], encoders: dict | None = None,
                 limits: ServiceLimits | None = None, inline_images: bool = False) -> None:
        if not indices:
            raise ValueError("no index to serve")
        self.indices = indices
        self.limits = limits or ServiceLimits()
        self.inline_images = inline_images
        self._runners = {spec: _EncoderRunner(encoder, self.limits) for spec, encoder in (encoders or {}).items()}
        self._search = MicroBatcher(self._search_batch, self.limits.max_batch, "knn-search",
                                    initializer=lambda: set_search_threads(self.limits.search_threads))
        self._http = None

    # --- public --------------------------------------------------------------------------

    def index_names(self) -> list[str]:
        return list(self.indices)

    def info(self) -> dict:
        """Index sizes, models and the flags this backend does not apply (our extension)."""
        return {
            "indices": {
                name: {key: index.config.get(key) for key in ("model", "dim", "count", "synthetic", "index_type")}
                | {"text_queries": index.config.get("model") in self._runners, "recall": recall_summary(index.config)}
                for name, index in self.indices.items()
            },
            "unsupported_flags": list(UNSUPPORTED_FLAGS),
        }

    def index_details(self) -> list[dict]:
        """``GET /indices-list?details=true``: each index's name, kind, size and measured recall."""
        return [
            {"name": name, "index_type": index.config.get("index_type"), "factory": index.config.get("factory"),
             "count": index.config.get("count"), "dim": index.config.get("dim"), "model": index.config.get("model"),
             "search_params": index.config.get("search_params") or {}, "recall": recall_summary(index.config)}
            for name, index in self.indices.items()
        ]

    async def query(self, request: KnnRequest) -> list[dict]:
        """Results best first, at most ``num_images``; raises ``KnnQueryError`` (4xx) on bad input."""
        index = self._index(request.indice_name)
        if request.modality != "image":
            raise KnnQueryError(400, f"index {index.name!r} holds image embeddings only; use modality 'image'")
        if max(request.num_images, request.candidates()) > self.limits.max_results:
            raise KnnQueryError(400, f"num_images/num_result_ids above this server's limit of {self.limits.max_results}")
        vector = await self._query_vector(request, index)
        return await self._search.run((index.name, vector, request))

    def metadata(self, ids: list[int], indice_name: str | None) -> list[dict]:
        """clip-retrieval's ``/metadata``: rows for ids, as ``[{id, metadata}]``."""
        index = self._index(indice_name)
        bad = [i for i in ids if not 0 <= i < len(index)]
        if bad:
            raise KnnQueryError(400, f"ids out of range 0..{len(index) - 1}: {bad[:5]}")
        return [{"id": i, "metadata": row} for i, row in zip(ids, index.rows(ids))]

    async def close(self) -> None:
        self._search.close()
        for runner in self._runners.values():
            runner.close()
        if self._http is not None:
            await self._http.aclose()

    # --- query vectors -------------------------------------------------------------------

    def _index(self, name: str | None) -> KnnIndex:
        if name in (None, ""):
            return next(iter(self.indices.values()))
        if name not in self.indices:
            raise KnnQueryError(404, f"no index named {name!r}; this server has: {', '.join(self.indices)}")
        return self.indices[name]

    def _runner(self, index: KnnIndex, kind: str) -> _EncoderRunner:
        runner = self._runners.get(index.config.get("model"))
        if runner is None:
            raise KnnQueryError(
                400, f"index {index.name!r} is served without its model, so {kind} queries are off; use embedding_input"
            )
        return runner

    async def _query_vector(self, request: KnnRequest, index: KnnIndex) -> np.ndarray:
        kind = request.query_kind()
        if kind == "embedding_input":
            vector = np.asarray(request.embedding_input, dtype=np.float32)
            if vector.shape != (index.dim,):
                raise KnnQueryError(400, f"embedding_input has {vector.size} values; index {index.name!r} needs {index.dim}")
            norm = float(np.linalg.norm(vector))
            if not np.isfinite(norm) or norm == 0:
                raise KnnQueryError(400, "embedding_input must be finite and non-zero")
            return vector / norm
        runner = self._runner(index, kind)
        if kind == "text":
            return await runner.text(request.text)
        if kind == "image":
            try:
                data = base64.b64decode(request.image, validate=True)
            except (binascii.Error, ValueError):
                raise KnnQueryError(400, "image is not valid base64") from None
        else:
            data = await self._download(request.image_url)
        if len(data) > self.limits.max_image_bytes:
            raise KnnQueryError(413, f"image is larger than {self.limits.max_image_bytes} bytes")
        pixels = await asyncio.get_running_loop().run_in_executor(None, self._preprocess, runner, data)
        return await runner.image(pixels)

    def _preprocess(self, runner: _EncoderRunner, data: bytes):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > self.limits.max_image_pixels:
                    raise KnnQueryError(413, f"image of {image.width}x{image.height} pixels is above the limit")
                return runner.encoder.preprocess(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
            raise KnnQueryError(400, f"image could not be decoded ({error})") from None

    async def _download(self, url: str) -> bytes:
        import httpx

        if not url.startswith(("http://", "https://")):
            raise KnnQueryError(400, "image_url must be an http(s) URL")
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.limits.image_url_timeout, follow_redirects=True)
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise KnnQueryError(400, f"image_url answered HTTP {response.status_code}")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.limits.max_image_bytes:
                        raise KnnQueryError(413, f"image_url body is larger than {self.limits.max_image_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as error:
            raise KnnQueryError(400, f"image_url could not be fetched ({type(error).__name__}: {error})") from None

    # --- search (runs on the batcher thread) ---------------------------------------------

    def _search_batch(self, items: list) -> list:
        results: list = [None] * len(items)
        by_index: dict[str, list[int]] = {}
        for position, (name, _, _) in enumerate(items):
            by_index.setdefault(name, []).append(position)
        for name, positions in by_index.items():
            index = self.indices[name]
            queries = np.stack([items[p][1] for p in positions])
            k = max(items[p][2].candidates() for p in positions)
            stored = None
            if any(items[p][2].deduplicate for p in positions):
                similarities, ids, stored = index.search_and_reconstruct(queries, k)
            else:
                similarities, ids = index.search(queries, k)
            for row, position in enumerate(positions):
                request = items[position][2]
                try:
                    results[position] = self._results(index, request, similarities[row], ids[row],
                                                      None if stored is None else stored[row])
                except Exception as error:  # one bad item must not fail its batch mates
                    results[position] = error
        return results

    def _results(self, index: KnnIndex, request: KnnRequest, similarities: np.ndarray, ids: np.ndarray,
                 stored: np.ndarray | None) -> list[dict]:
        count = request.candidates()
        valid = ids[:count] >= 0
        ids, similarities = ids[:count][valid], similarities[:count][valid]
        if request.deduplicate and len(ids) > 1:
            drop = near_duplicate_positions(stored[:count][valid])
            keep = np.ones(len(ids), dtype=bool)
            keep[drop] = False
            ids, similarities = ids[keep], similarities[keep]
        ids, similarities = ids[: request.num_images], similarities[: request.num_images]
        rows = index.rows(ids.tolist())
        output = []
        for item_id, similarity, row in zip(ids.tolist(), similarities.tolist(), rows):
            result = {"id": item_id, "similarity": similarity, **row}
            if self.inline_images and row.get("image_path"):
                path = Path(row["image_path"])
                if path.is_file():
                    result["image"] = base64.b64encode(path.read_bytes()).decode("ascii")
            output.append(result)
        return output
