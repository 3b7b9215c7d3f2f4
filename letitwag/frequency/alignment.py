"""Image-text *matched* counts and *misalignment*, computed by joining two postings files.

The paper's main frequency is the matched count: for each concept, the number of samples whose
caption mentions it AND whose image shows it (|text hits ∩ image hits|, sample ids
intersected). Its misalignment measure asks how many image-text pairs have nothing in common:

- a sample is a *candidate* when its caption mentions at least one concept and its image shows
  at least one concept (the paper only compares samples present in both sample -> concepts
  maps, ``misalignment_degree_quantification.py``; a sample with no caption concept or no image
  concept is therefore never counted as misaligned);
- a candidate is *misaligned* when its caption concepts and image concepts share none;
- degree = misaligned / corpus size. The paper reports it against a fixed "conservative" corpus
  size (its headline figure) and against the "extracted" size, max(#samples with a caption
  concept, #samples with an image concept); both are written here.

Both computations turn every (sample, concept) posting into one int64 key (sample code x number
of concepts + concept code, codes from Arrow hash lookups) and then work on sorted integer
arrays (sort, ``intersect1d``, ``bincount``): no Python loop over samples, and
duplicate postings in hand-made files count once. Memory is about 40 bytes per posting.
Inputs are an output directory of ``letitwag frequency count --postings`` / ``tag-images``
(holding ``text_postings.parquet`` / ``image_postings.parquet`` and, beside them, the
frequency tables that say which concepts were searched) or a postings parquet file directly.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from letitwag import __version__
from letitwag.concepts import Concept, ConceptList
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json, file_sha256
from letitwag.postings import read_postings
from letitwag.tables import FrequencyTable

logger = logging.getLogger(__name__)

MISALIGNMENT_FORMAT = "letitwag.misalignment/1"


@dataclass
class PostingsSide:
    """One side (text or image) of a join: its postings and, when found, its frequency table."""

    kind: str
    postings_path: Path
    postings: pa.Table
    table_path: Path | None
    table: FrequencyTable | None

    def concept_universe(self) -> list[str] | None:
        """The concepts this side searched for (from its table), or None when only postings are known."""
        return None if self.table is None else self.table.table["concept_id"].to_pylist()

    def corpus_size(self) -> int | None:
        if self.table is None or self.table.table.num_rows == 0:
            return None
        sizes = {size for size in self.table.table["corpus_size"].to_pylist() if size is not None}
        return sizes.pop() if len(sizes) == 1 else None

    def corpus(self) -> str | None:
        if self.table is None or self.table.table.num_rows == 0:
            return None
        return self.table.table["corpus"][0].as_py()

    def describe(self) -> dict:
        """Provenance entry: both files with fingerprints."""
        record = {"postings": str(self.postings_path), "postings_sha256": file_sha256(self.postings_path)}
        if self.table_path is not None:
            record["table"] = str(self.table_path)
            record["table_sha256"] = file_sha256(self.table_path)
        return record


def load_side(spec: str | Path, kind: str) -> PostingsSide:
    """Resolve ``spec`` (an output directory or a postings parquet) for side ``kind`` (text/image).

    A directory must hold ``<kind>_postings.parquet``; its ``<kind>.parquet`` table, if present,
    supplies the concept universe and corpus size. For a postings file ``X_postings.parquet``
    the table ``X.parquet`` beside it is used the same way.
    """
    path = Path(spec)
    if path.is_dir():
        postings_path = path / f"{kind}_postings.parquet"
        if not postings_path.exists():
            raise UserInputError(
                f"{path}: no {postings_path.name} in this directory; run letitwag frequency "
                f"{'count --postings' if kind == 'text' else 'tag-images'} with --out {path}, or pass the postings file"
            )
    elif path.exists():
        postings_path = path
    else:
        raise UserInputError(f"{path}: no such {kind} postings file or directory")
    table_path = postings_path.with_name(postings_path.name.replace("_postings.parquet", ".parquet"))
    table = None
    if table_path != postings_path and table_path.exists():
        table = FrequencyTable.read(table_path)
    else:
        table_path = None
    postings = read_postings(postings_path)
    nulls = postings["sample_id"].null_count + postings["concept_id"].null_count
    if nulls:
        raise UserInputError(f"{postings_path}: {nulls} postings row(s) with a null sample_id or concept_id; drop them")
    return PostingsSide(kind, postings_path, postings, table_path, table)


@dataclass
class PairKeys:
    """Both sides' postings as sorted unique int64 keys ``sample_code * width + concept_code``."""

    text: np.ndarray
    image: np.ndarray
    width: int

    def matched(self) -> np.ndarray:
        """Keys of (sample, concept) pairs present on both sides."""
        return np.intersect1d(self.text, self.image, assume_unique=True)

    def samples(self, keys: np.ndarray) -> np.ndarray:
        return _sorted_unique(keys // self.width)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort + neighbour compare: several times faster than numpy 2's hash unique here)."""
    ordered = np.sort(values)
    if ordered.size == 0:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _both(text: pa.Table, image: pa.Table, column: str) -> pa.Array:
    """One column of both sides as a single array (large_string: no 2 GB offset limit)."""
    chunks = text[column].chunks + image[column].chunks
    return pa.chunked_array(chunks, pa.string()).cast(pa.large_string()).combine_chunks()


def _pair_keys(text: pa.Table, image: pa.Table, concept_ids: list[str]) -> PairKeys:
    """Encode both postings against one concept universe; postings outside it are dropped.

    Sample codes come from one dictionary encoding of both sides' ids together (one hash pass),
    so equal ids get equal codes on both sides.
    """
    width = max(len(concept_ids), 1)
    samples = _both(text, image, "sample_id").dictionary_encode().indices.to_numpy().astype(np.int64)
    universe = pa.array(concept_ids, pa.large_string())
    concepts = pc.index_in(_both(text, image, "concept_id"), value_set=universe).fill_null(-1).to_numpy()
    keys = samples * width + concepts
    inside = concepts >= 0
    split = text.num_rows
    return PairKeys(_sorted_unique(keys[:split][inside[:split]]), _sorted_unique(keys[split:][inside[split:]]), width)


def _concept_universe(
    text: PostingsSide, image: PostingsSide, concepts: ConceptList | None
) -> tuple[ConceptList, dict]:
    """The concepts of the matched table and an explicit account of what each side lacked.

    With ``concepts`` given, that list is used as is. Otherwise the union of both sides'
    concepts (from their tables, else from their postings), text side first: a concept known to
    only one side gets matched count 0, as in the paper (a concept missing from the text hits
    is an empty hit list), and is listed in the provenance.
    """
    names: dict[str, str] = {}
    for side in (text, image):
        if side.table is not None:
            names.update(zip(side.table.table["concept_id"].to_pylist(), side.table.table["name"].to_pylist()))
    text_ids = text.concept_universe() or pc.unique(text.postings["concept_id"]).to_pylist()
    image_ids = image.concept_universe() or pc.unique(image.postings["concept_id"]).to_pylist()
    text_set, image_set = set(text_ids), set(image_ids)
    report = {
        "text_concepts_from": "table" if text.table is not None else "postings",
        "image_concepts_from": "table" if image.table is not None else "postings",
        "concepts_only_in_text": sorted(text_set - image_set),
        "concepts_only_in_image": sorted(image_set - text_set),
    }
    if concepts is not None:
        wanted = set(concepts.ids)
        report["concepts_in_list_missing_from_text"] = sorted(wanted - text_set)
        report["concepts_in_list_missing_from_image"] = sorted(wanted - image_set)
        return concepts, report
    ordered = list(dict.fromkeys([*text_ids, *image_ids]))
    return ConceptList((Concept(i, name=names.get(i, "")) for i in ordered), "matched"), report


def matched_table(
    text_spec: str | Path,
    image_spec: str | Path,
    concepts: ConceptList | None = None,
    corpus: str | None = None,
) -> FrequencyTable:
    """Per-concept |text sample ids ∩ image sample ids| as a ``matched`` frequency table."""
    text, image = load_side(text_spec, "text"), load_side(image_spec, "image")
    universe, report = _concept_universe(text, image, concepts)
    keys = _pair_keys(text.postings, image.postings, universe.ids)
    matched = keys.matched()
    counts = np.bincount(matched % keys.width, minlength=len(universe)).tolist()
    provenance = {
        "tool": f"letitwag {__version__}",
        "command": "frequency match",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "inputs": {"text": text.describe(), "image": image.describe()},
        "parameters": {"concepts": universe.name or "union of both sides", "num_concepts": len(universe)},
        "concept_coverage": report,
        "matched_pairs": int(matched.size),
    }
    corpus_name = corpus or text.corpus() or image.corpus() or "unknown"
    size = text.corpus_size() or image.corpus_size()
    logger.info("matched %d (sample, concept) pairs over %d concepts", matched.size, len(universe))
    return FrequencyTable.from_counts(universe, counts, None, corpus_name, "matched", size, provenance)


def misalignment(
    text_spec: str | Path,
    image_spec: str | Path,
    corpus_size: int | None = None,
    concepts: ConceptList | None = None,
) -> dict:
    """The paper's misalignment metrics for one corpus, as a JSON-ready dict (see module docstring).

    Concepts: with ``concepts`` given, both sides are restricted to it; otherwise, when both
    sides' tables are found, to the concepts both searched (a caption concept the tagger never
    looked for cannot make a pair aligned); with postings alone, the postings are used as they are.
    """
    text, image = load_side(text_spec, "text"), load_side(image_spec, "image")
    text_universe, image_universe = text.concept_universe(), image.concept_universe()
    if concepts is not None:
        common = concepts.ids
        scope = f"concept list {concepts.name or '<given>'}"
    elif text_universe is not None and image_universe is not None:
        image_set = set(image_universe)
        common = [c for c in text_universe if c in image_set]
        scope = "concepts searched by both sides (from their tables)"
    else:
        both = pa.chunked_array(text.postings["concept_id"].chunks + image.postings["concept_id"].chunks, pa.string())
        common = pc.unique(both).to_pylist()
        scope = "concepts as found in the postings (no tables beside them)"
    keys = _pair_keys(text.postings, image.postings, common)
    text_samples, image_samples = keys.samples(keys.text), keys.samples(keys.image)
    candidates = int(np.intersect1d(text_samples, image_samples, assume_unique=True).size)
    aligned = int(keys.samples(keys.matched()).size)
    misaligned = candidates - aligned
    extracted = int(max(text_samples.size, image_samples.size))

    if corpus_size is not None:
        if corpus_size <= 0:
            raise UserInputError(f"--corpus-size must be positive, got {corpus_size}")
        size, size_source = corpus_size, "given by the user (--corpus-size)"
    elif text.corpus_size() is not None:
        size, size_source = text.corpus_size(), f"corpus_size of the text table {text.table_path}"
    elif image.corpus_size() is not None:
        size, size_source = image.corpus_size(), f"corpus_size of the image table {image.table_path}"
    else:
        raise UserInputError(
            f"{text.postings_path}: no frequency table with a corpus size beside the postings; pass --corpus-size N"
        )
    if size < extracted:
        raise UserInputError(
            f"corpus size {size} ({size_source}) is smaller than the {extracted} samples found in the postings; "
            "pass the real --corpus-size"
        )
    logger.info("%d of %d candidate samples misaligned (corpus size %d)", misaligned, candidates, size)
    return {
        "format": MISALIGNMENT_FORMAT,
        "corpus": text.corpus() or image.corpus() or "unknown",
        "misaligned_samples": misaligned,
        "degree": misaligned / size,
        "corpus_size": size,
        "corpus_size_source": size_source,
        "degree_extracted_size": misaligned / extracted if extracted else 0.0,
        "corpus_size_extracted": extracted,
        "samples_with_text_concepts": int(text_samples.size),
        "samples_with_image_concepts": int(image_samples.size),
        "samples_with_both": candidates,
        "aligned_samples": aligned,
        "concept_scope": scope,
        "num_concepts": len(common),
        "definition": "a sample with >=1 caption concept and >=1 image concept is misaligned when the two sets "
        "share none; degree = misaligned / corpus_size (a fraction, not a percent)",
        "tool": f"letitwag {__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "inputs": {"text": text.describe(), "image": image.describe()},
    }


def write_misalignment(path: str | Path, metrics: dict) -> Path:
    """Write the metrics JSON atomically."""
    atomic_write_json(path, metrics)
    return Path(path)
