"""``knn:URL`` — query a clip-retrieval-compatible backend with each concept's prompts.

For every concept (one unit each) the prompts are the concept's display name in the first
``knn_max_templates`` templates of a prompt set from ``letitwag/data/templates.json``; each is
sent as a text query with ``num_images``, ``indice_name``, ``modality``, ``deduplicate`` and the
safety / violence flags passed through. Results are merged by id (best similarity kept) and
turned into images: an ``image_path`` that exists on this machine (a local ``letitwag knn
serve``) is used in place, inline base64 ``image`` bytes are stored, otherwise the ``url`` is
downloaded through img2dataset like a URL list. A backend that is down or answers garbage
stops the run with a one-line error after ``retries``; finished concepts are kept.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from pathlib import Path

from letitwag.builders.collect.records import file_candidate, rejection, store_bytes
from letitwag.builders.collect.runner import Source, UnitResult
from letitwag.builders.collect.urls import download_urls
from letitwag.builders.knn.protocol import INDICES_PATH, KNN_PATH, UNSUPPORTED_HEADER, KnnRequest, KnnResult
from letitwag.concepts import Concept, ConceptList
from letitwag.errors import UserInputError
from letitwag.io import text_sha256

logger = logging.getLogger(__name__)


class KnnBackendError(UserInputError):
    """The kNN backend is unreachable or answered something that is not the protocol."""


class KnnSource(Source):
    kind = "knn"

    def __init__(self, argument, options) -> None:
        super().__init__(argument, options)
        self.base_url = argument.rstrip("/").removesuffix(KNN_PATH)
        self._client = None
        self._indices: list[str] | None = None
        self._unsupported: set[str] = set()

    @property
    def client(self):
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.options.timeout)
        return self._client

    def _call(self, method: str, path: str, what: str, **kwargs):
        """One request with retries on connection errors and 5xx; the decoded JSON answer."""
        import httpx

        url = f"{self.base_url}{path}"
        problem = ""
        for attempt in range(self.options.retries + 1):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 5))
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx.HTTPError as error:
                problem = f"not reachable ({type(error).__name__}: {error})"
                continue
            if response.status_code >= 500:
                problem = f"answered HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                detail = response.text[:200].replace("\n", " ")
                raise KnnBackendError(f"kNN backend {url} refused {what}: HTTP {response.status_code} {detail}")
            try:
                self._unsupported.update(filter(None, response.headers.get(UNSUPPORTED_HEADER, "").split(",")))
                return response.json()
            except ValueError:
                raise KnnBackendError(f"kNN backend {url} answered non-JSON for {what}; is it a clip-retrieval backend?") from None
        raise KnnBackendError(f"kNN backend {url} {problem} for {what} after {self.options.retries + 1} tries; "
                              "start it (letitwag knn serve) or fix the URL, then rerun: finished concepts are kept")

    def units(self, concepts: ConceptList) -> list[str]:
        indices = self._call("GET", INDICES_PATH, "the index list")
        if not isinstance(indices, list) or not all(isinstance(name, str) for name in indices):
            raise KnnBackendError(f"kNN backend {self.base_url}{INDICES_PATH} did not answer a list of index names")
        if self.options.knn_indice and self.options.knn_indice not in indices:
            raise UserInputError(f"kNN backend {self.base_url} has no index {self.options.knn_indice!r}; it has: "
                                 f"{', '.join(indices)}")
        self._indices = indices
        return [f"concept:{concept.id}" for concept in concepts]

    def prompts(self, concept: Concept) -> list[str]:
        from letitwag.data import read_bundled_json

        sets = read_bundled_json("templates.json")
        if self.options.knn_templates not in sets:
            raise UserInputError(f"unknown prompt set {self.options.knn_templates!r}; use one of {', '.join(sets)}")
        templates = sets[self.options.knn_templates][: self.options.knn_max_templates]
        return [template.replace("{c}", concept.name) for template in templates]

    def _query(self, text: str, concept: Concept) -> list[KnnResult]:
        options = self.options
        request = KnnRequest(text=text, num_images=options.knn_num_images, num_result_ids=options.knn_num_images,
                             indice_name=options.knn_indice or (self._indices or [None])[0],
                             modality=options.knn_modality, deduplicate=options.knn_deduplicate,
                             use_safety_model=options.knn_safety, use_violence_detector=options.knn_violence)
        answer = self._call("POST", KNN_PATH, f"concept {concept.id!r}", json=request.model_dump())
        if not isinstance(answer, list):
            raise KnnBackendError(f"kNN backend {self.base_url} answered {type(answer).__name__} instead of a result "
                                  f"list for concept {concept.id!r}")
        try:
            return [KnnResult.model_validate(item) for item in answer]
        except ValueError as error:
            raise KnnBackendError(f"kNN backend {self.base_url}: a result for concept {concept.id!r} lacks an integer "
                                  f"id / numeric similarity ({str(error).splitlines()[0]})") from None

    def run_unit(self, unit: str, concepts: ConceptList, workdir: Path, manifest_dir: Path) -> UnitResult:
        concept = concepts.get(unit.removeprefix("concept:"))
        best: dict[int, KnnResult] = {}
        for text in self.prompts(concept):
            for result in self._query(text, concept):
                if result.id not in best or result.similarity > best[result.id].similarity:
                    best[result.id] = result
        ranked = sorted(best.values(), key=lambda r: (-r.similarity, r.id))
        candidates, rejected, downloads = [], [], []
        for result in ranked:
            fields = {"candidate_id": f"{self.key}/{concept.id}/{result.id}", "concept_id": concept.id, "source": self.kind,
                      "url": result.url, "caption": result.caption, "similarity": result.similarity}
            local = Path(result.image_path) if result.image_path else None
            if local is not None and local.is_file():
                candidates.append(file_candidate(local, manifest_dir, **fields))
            elif result.image:
                try:
                    data = base64.b64decode(result.image, validate=True)
                except (binascii.Error, ValueError):
                    rejected.append(rejection(self.kind, concept.id, fields["candidate_id"], "bad_inline_image",
                                              "image field is not base64"))
                    continue
                path = store_bytes(data, workdir / "images", ".jpg")
                candidates.append(file_candidate(path, manifest_dir, **fields))
            elif result.url and result.url.startswith(("http://", "https://")):
                downloads.append(fields)
            else:
                rejected.append(rejection(self.kind, concept.id, fields["candidate_id"], "no_image",
                                          "result has no reachable image_path, image or http(s) url"))
        if downloads:
            folder = workdir / "downloads" / text_sha256(unit)[:16]
            got, failed = download_urls(downloads, folder, manifest_dir, self.kind, self.options.timeout,
                                        self.options.retries, self.options.download_threads)
            candidates += got
            rejected += failed
        return UnitResult(candidates, rejected)

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "indices": self._indices,
            "request": {"num_images": self.options.knn_num_images, "indice_name": self.options.knn_indice,
                        "deduplicate": self.options.knn_deduplicate, "use_safety_model": self.options.knn_safety,
                        "use_violence_detector": self.options.knn_violence, "modality": self.options.knn_modality,
                        "templates": self.options.knn_templates, "max_templates": self.options.knn_max_templates},
            "backend_did_not_apply": sorted(self._unsupported),
        }
