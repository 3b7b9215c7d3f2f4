"""The clip-retrieval kNN REST contract, defined once for our server and our client.

Why a module of its own: the server (``letitwag knn serve``) and the ``knn:`` collect source
must agree on field names, defaults and meaning, and both must match clip-retrieval's
``clip_back`` so either side can talk to the other project's half.

``POST /knn-service`` takes a JSON object with these fields (clip-retrieval's names):

=====================  ========================================================================
``text``               query text, embedded with the index's model
``image``              base64-encoded image bytes, embedded with the index's model
``image_url``          URL of an image the server downloads and embeds
``embedding_input``    a query vector (list of floats, the index's dimension; normalised here)
``modality``           ``image`` searches the image index (the only one a letitwag index has)
``num_images``         how many results to return (clip-retrieval requires it; default 40 here)
``num_result_ids``     how many neighbours to fetch before de-duplication (>= ``num_images``)
``indice_name``        which served index (``GET /indices-list``); default: the first one
``deduplicate``        drop results whose embeddings are near-identical (cosine >= 0.94,
                       connected components, first of each kept: clip-retrieval's rule)
``use_safety_model``, ``use_violence_detector``, ``use_mclip``, ``aesthetic_score``,
``aesthetic_weight``   accepted for compatibility but NOT applied (no such models offline);
                       the response names them in the ``X-Letitwag-Unsupported`` header
=====================  ========================================================================

``GET /indices-list`` answers clip-retrieval's JSON list of index names, with each index's recall
against exact search in the ``X-Letitwag-Recall`` header (``name=0.93@40`` or ``name=exact``);
``GET /indices-list?details=true`` answers ``[{name, index_type, factory, count, dim, model,
search_params, recall}]`` instead.

Exactly one of ``text``, ``image``, ``image_url``, ``embedding_input`` must be non-empty
(clip-retrieval silently picks the first; we refuse an ambiguous query). The answer is a JSON
list ``[{"id", "similarity", "url", "caption", "image_path", ...}]`` best first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

KNN_PATH = "/knn-service"
INDICES_PATH = "/indices-list"
METADATA_PATH = "/metadata"
UNSUPPORTED_HEADER = "X-Letitwag-Unsupported"
RECALL_HEADER = "X-Letitwag-Recall"  # on GET /indices-list: name=recall@k (or exact) per index
QUERY_FIELDS = ("text", "image", "image_url", "embedding_input")
# Flags a clip-retrieval backend applies with models we cannot ship offline.
UNSUPPORTED_FLAGS = ("use_safety_model", "use_violence_detector", "use_mclip", "aesthetic_score")
DEDUP_THRESHOLD = 0.94  # clip-retrieval's cosine threshold for "the same image"
DEFAULT_NUM_IMAGES = 40


class KnnRequest(BaseModel):
    """One ``/knn-service`` request; unknown fields are refused rather than ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: StrictStr | None = None
    image: StrictStr | None = None
    image_url: StrictStr | None = None
    embedding_input: list[StrictFloat | StrictInt] | None = None
    modality: Literal["image", "text"] = "image"
    num_images: StrictInt = Field(DEFAULT_NUM_IMAGES, ge=1)
    num_result_ids: StrictInt | None = Field(None, ge=1)
    indice_name: StrictStr | None = None
    deduplicate: StrictBool = False
    use_safety_model: StrictBool = False
    use_violence_detector: StrictBool = False
    use_mclip: StrictBool = False
    aesthetic_score: StrictInt | StrictStr | None = None
    aesthetic_weight: StrictFloat | StrictInt | StrictStr | None = None

    def query_kind(self) -> str:
        """The one query field that is set; ``ValueError`` when none or several are."""
        given = [name for name in QUERY_FIELDS if getattr(self, name) not in (None, "", [])]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one of {', '.join(QUERY_FIELDS)} (found: {found})")
        return given[0]

    def candidates(self) -> int:
        """Neighbours to fetch: ``num_result_ids`` (clip-retrieval's default: ``num_images``)."""
        return max(self.num_result_ids or self.num_images, self.num_images)

    def unsupported_flags(self) -> list[str]:
        """The flags this request asks for that a letitwag backend does not apply."""
        asked = [name for name in ("use_safety_model", "use_violence_detector", "use_mclip") if getattr(self, name)]
        if self.aesthetic_score not in (None, "") and self.aesthetic_weight not in (None, "", 0, 0.0):
            asked.append("aesthetic_score")
        return asked


def parse_request(body: bytes) -> KnnRequest:
    """Parse and check a request body; ``ValueError`` with a one-line reason on any problem."""
    try:
        request = KnnRequest.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        if first.get("type") == "json_invalid":
            raise ValueError(f"malformed JSON: {first.get('msg')}") from None
        if first.get("type") == "extra_forbidden":
            allowed = ", ".join(KnnRequest.model_fields)
            raise ValueError(f"unknown field {where!r}; allowed fields: {allowed}") from None
        raise ValueError(f"field {where!r}: {first.get('msg')}") from None
    request.query_kind()
    return request


class KnnResult(BaseModel):
    """One result item as a client checks it (extra metadata columns are kept)."""

    model_config = ConfigDict(extra="allow")

    id: int
    similarity: float
    url: str | None = None
    caption: str | None = None
    image_path: str | None = None
    image: str | None = None
