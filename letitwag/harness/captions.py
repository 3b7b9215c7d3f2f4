"""Open an image-caption dataset for retrieval: images, their captions, and which caption is whose.

Three layouts load:

* CLIP_benchmark's webdataset layout with ``dataset_type.txt`` = ``retrieval`` (``KEY.txt``
  holds an image's captions, one per line; ``clip-benchmark/wds_mscoco_captions``,
  ``clip-benchmark/wds_flickr30k``), local or from the Hub;
* a Hugging Face dataset with an ``Image`` column and a list-of-strings caption column, one row
  per image (``nlphuji/mscoco_2014_5k_test_image_text_retrieval``,
  ``nlphuji/flickr_1k_test_image_text_retrieval``: columns ``image`` and ``caption``);
* a Hugging Face dataset with one row per caption (a string caption column): rows are grouped
  into images by an image-id column (``--image-id-column``, else the first of
  ``ID_COLUMNS`` present), else by identical image content.

Images are numbered 0..N-1 in dataset order; captions 0..M-1 image by image, in each image's
order. ``captions_per_image`` keeps the first n captions of each image (the paper used 5 for
COCO and Flickr; CLIP_benchmark uses all).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)

CAPTION_COLUMNS = ("caption", "captions", "sentences", "sentence", "text", "texts", "raw")
ID_COLUMNS = ("image_id", "img_id", "imgid", "cocoid", "image_path", "filepath", "filename", "file_name", "url")


@dataclass
class CaptionDataset:
    """A split ready for retrieval: image rows (image column undecoded) and the captions of each image."""

    dataset: object  # indexable by image position 0..N-1 -> row with ``image_column``
    source: str
    split: str
    image_column: str
    revision: str | None
    cache_identity: str  # cheap identity of the image rows for the feature cache
    image_rows: np.ndarray  # int64 [N]: the dataset row of each image (``image_index`` in predictions)
    captions: list[str]
    caption_image: np.ndarray  # int64 [M]: the image position of each caption
    caption_position: np.ndarray  # int32 [M]: its position among its image's captions
    layout: str  # "webdataset" | "caption-list" | "caption-rows"
    caption_column: str | None = None
    image_id_column: str | None = None
    splits: list[str] = field(default_factory=list)
    label_column = None  # the image feature loop reads no labels

    @property
    def num_images(self) -> int:
        return len(self.image_rows)


def _flatten(per_image: list[list[str] | None], captions_per_image: int | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Captions image by image (the first ``captions_per_image`` of each), with their image and position."""
    if captions_per_image is not None and captions_per_image < 1:
        raise UserInputError(f"--captions-per-image must be at least 1, got {captions_per_image}")
    captions, owners, positions = [], [], []
    for image, texts in enumerate(per_image):
        kept = [text for text in (texts or []) if text is not None][:captions_per_image]
        captions.extend(kept)
        owners.extend([image] * len(kept))
        positions.extend(range(len(kept)))
    return captions, np.asarray(owners, dtype=np.int64), np.asarray(positions, dtype=np.int32)


def _is_string(feature) -> bool:
    return getattr(feature, "dtype", None) in ("string", "large_string")


def _is_string_list(feature) -> bool:
    inner = getattr(feature, "feature", None)
    return not _is_string(feature) and inner is not None and _is_string(inner)


def detect_caption_column(features, caption_column: str | None, source: str) -> tuple[str, bool]:
    """(caption column, whether it holds a list of captions per row); lists preferred, then by name."""
    from letitwag.harness.data import describe_columns

    described = describe_columns(features)
    if caption_column is not None:
        if caption_column not in features:
            raise UserInputError(f"dataset {source!r}: no column {caption_column!r}; columns: {described}")
        feature = features[caption_column]
        if not (_is_string(feature) or _is_string_list(feature)):
            raise UserInputError(f"dataset {source!r}: caption column {caption_column!r} is neither text nor a list "
                                 f"of texts ({described})")
        return caption_column, _is_string_list(feature)
    for wants_list in (True, False):
        matching = [name for name, feature in features.items()
                    if (_is_string_list(feature) if wants_list else _is_string(feature))]
        for name in CAPTION_COLUMNS:
            if name in matching:
                return name, wants_list
    raise UserInputError(f"dataset {source!r}: no caption column (columns: {described}); name the column holding "
                         "the captions (text, or a list of texts per image) with --caption-column")


def _group_rows(dataset, image_column: str, id_column: str | None, source: str) -> tuple[np.ndarray, str | None]:
    """Per row, the image position it belongs to (first appearance order), grouped by id or image content."""
    if id_column is None:
        id_column = next((name for name in ID_COLUMNS if name in dataset.features), None)
    elif id_column not in dataset.features:
        from letitwag.harness.data import describe_columns

        raise UserInputError(f"dataset {source!r}: no column {id_column!r}; columns: {describe_columns(dataset.features)}")
    if id_column is not None:
        keys = [json.dumps(value, sort_keys=True, default=str) for value in dataset[id_column]]
    else:
        logger.info("%s: one row per caption and no image-id column; grouping rows by identical image content", source)
        keys = [hashlib.sha256((cell or {}).get("bytes") or str((cell or {}).get("path")).encode()).hexdigest()
                for cell in dataset[image_column]]
    positions: dict[str, int] = {}
    owner = np.fromiter((positions.setdefault(key, len(positions)) for key in keys), dtype=np.int64, count=len(keys))
    return owner, id_column


def _open_huggingface(source: str, split: str | None, revision: str | None, image_column: str | None,
                      caption_column: str | None, id_column: str | None, captions_per_image: int | None) -> CaptionDataset:
    import datasets

    from letitwag.harness.data import (choose_split, dataset_revision, detect_image_column, load_splits,
                                       local_files_identity)

    splits = load_splits(source, revision)
    chosen = choose_split(sorted(splits), split, source)
    dataset = splits[chosen]
    image_column = detect_image_column(dataset.features, image_column, source)
    caption_column, listed = detect_caption_column(dataset.features, caption_column, source)
    dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    if listed:
        per_image = dataset[caption_column]
        image_rows = np.arange(len(dataset), dtype=np.int64)
        layout = "caption-list"
        images = dataset.select_columns([image_column])
    else:
        owner, id_column = _group_rows(dataset, image_column, id_column, source)
        texts = dataset[caption_column]
        per_image = [[] for _ in range(int(owner.max()) + 1 if len(owner) else 0)]
        for row, image in enumerate(owner.tolist()):
            per_image[image].append(texts[row])
        image_rows = np.unique(owner, return_index=True)[1].astype(np.int64)
        layout = "caption-rows"
        images = dataset.select_columns([image_column]).select(image_rows.tolist())
    captions, caption_image, caption_position = _flatten(per_image, captions_per_image)
    local = Path(source).expanduser()
    identity = {"source": str(local.resolve()) if local.exists() else source, "split": chosen,
                "fingerprint": getattr(dataset, "_fingerprint", None),
                "files": local_files_identity(local) if local.is_dir() else None,
                "image_column": image_column, "image_rows": hashlib.sha256(image_rows.tobytes()).hexdigest()}
    return CaptionDataset(
        dataset=images, source=source, split=chosen, image_column=image_column,
        revision=dataset_revision(splits[chosen], revision),
        cache_identity=hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest(),
        image_rows=image_rows, captions=captions, caption_image=caption_image, caption_position=caption_position,
        layout=layout, caption_column=caption_column, image_id_column=id_column if not listed else None,
        splits=sorted(splits),
    )


def _open_webdataset(source: str, root: Path, revision: str | None, split: str | None,
                     captions_per_image: int | None) -> CaptionDataset:
    from letitwag.harness.data import choose_split, webdataset_identity
    from letitwag.harness.wds import WdsRows, index_shards, read_layout

    layout = read_layout(root)
    if layout.dataset_type != "retrieval":
        raise UserInputError(f"dataset {source!r} is a {layout.dataset_type} dataset ({root}/dataset_type.txt says "
                             "so, or is absent); evaluate it with --task classification")
    chosen = choose_split(layout.splits, split, source)
    samples = index_shards(layout.shards(chosen))
    captions, caption_image, caption_position = _flatten(samples.captions, captions_per_image)
    rows = WdsRows(samples)
    return CaptionDataset(
        dataset=rows, source=source, split=chosen, image_column=rows.image_column, revision=revision,
        cache_identity=webdataset_identity(source, root, chosen), image_rows=np.arange(len(samples), dtype=np.int64),
        captions=captions, caption_image=caption_image, caption_position=caption_position, layout="webdataset",
        caption_column="txt", splits=layout.splits,
    )


def open_caption_dataset(
    source: str,
    *,
    split: str | None = None,
    revision: str | None = None,
    image_column: str | None = None,
    caption_column: str | None = None,
    image_id_column: str | None = None,
    captions_per_image: int | None = None,
) -> CaptionDataset:
    """Load ``source`` for retrieval and resolve split, columns and each caption's image."""
    from letitwag.harness.data import webdataset_root

    wds_root = webdataset_root(source, revision, split)
    if wds_root is not None:
        if image_column or caption_column or image_id_column:
            raise UserInputError(f"dataset {source!r} is in CLIP_benchmark's webdataset layout: its columns are fixed, "
                                 "drop --image-column/--caption-column/--image-id-column")
        data = _open_webdataset(source, *wds_root, split, captions_per_image)
    else:
        data = _open_huggingface(source, split, revision, image_column, caption_column, image_id_column,
                                 captions_per_image)
    if not data.captions:
        raise UserInputError(f"dataset {source!r}: no captions found in split {data.split!r}")
    return data
