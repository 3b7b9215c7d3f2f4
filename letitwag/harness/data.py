"""Open a classification dataset (Hub id or local folder) and find its image and label columns.

Why auto-detection: the released ``bethgelab/Let-It-Wag`` has one ``train`` split and its own
column names; any dataset in the HF layout should work without flags, and the error for one
that cannot should say which columns exist. Four layouts load: the HF Hub layout (parquet
under ``data/``) or a Hub id, a ``save_to_disk`` folder, a plain image folder
(``root/<class>/*.jpg``, read by ``datasets``' ``imagefolder``: classes are the sorted folder
names, as torchvision's ``ImageFolder`` has them), and CLIP_benchmark's webdataset layout
(``letitwag.harness.wds``: a local folder or a ``clip-benchmark/wds_*`` Hub id), whose shipped
class names and templates become the defaults.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from letitwag.concept_map import unique_class_names
from letitwag.concepts import display_name
from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)

SPLIT_PREFERENCE = ("test", "validation", "train")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class EvalDataset:
    """A split ready to evaluate: the rows, which columns to read, class ids and prompt names."""

    dataset: object  # datasets.Dataset with the image column left undecoded (bytes + path)
    source: str
    split: str
    image_column: str
    label_column: str
    class_ids: list[str]
    prompt_names: list[str]
    revision: str | None
    cache_identity: str  # cheap identity of the rows for the feature cache
    splits: list[str] = field(default_factory=list)
    templates: list[str] | None = None  # the prompt templates the dataset ships (webdataset layout)
    layout: str = "huggingface"  # "huggingface" | "webdataset"

    @property
    def num_rows(self) -> int:
        return len(self.dataset)


def _is_saved_to_disk(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


# Where the Hub keeps its automatic parquet export of a dataset (also of one built by a script).
PARQUET_EXPORT_REVISION = "refs/convert/parquet"


def _load_hub_or_folder(datasets, target: str, revision: str | None):
    """``load_dataset``; a Hub dataset that still ships a loading script (``datasets`` >= 4 runs none,
    e.g. ``nlphuji/mscoco_2014_5k_test_image_text_retrieval``) is read from its parquet export."""
    try:
        return datasets.load_dataset(target, revision=revision)
    except RuntimeError as error:
        if "scripts are no longer supported" not in str(error) or revision is not None:
            raise
    logger.warning("%s ships a loading script, which datasets no longer runs; reading the Hub's parquet export "
                   "(revision %s)", target, PARQUET_EXPORT_REVISION)
    return datasets.load_dataset(target, revision=PARQUET_EXPORT_REVISION)


def load_splits(source: str, revision: str | None) -> dict:
    """All splits of ``source``: a save_to_disk folder, a local folder (HF layout or images), or a Hub id."""
    import datasets

    path = Path(source).expanduser()
    try:
        if path.is_dir() and _is_saved_to_disk(path):
            loaded = datasets.load_from_disk(str(path))
        else:
            if not path.exists() and (source.startswith((".", "/", "~")) or source.count("/") != 1):
                raise UserInputError(f"dataset {source!r}: no such folder, and not a Hub id like ORG/NAME")
            loaded = _load_hub_or_folder(datasets, str(path) if path.is_dir() else source, revision)
    except UserInputError:
        raise
    except (FileNotFoundError, ValueError, OSError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserInputError(f"dataset {source!r}: cannot load it ({first})") from None
    if isinstance(loaded, datasets.Dataset):
        return {"train": loaded}
    return dict(loaded)


def choose_split(splits: list[str], wanted: str | None, source: str) -> str:
    """``wanted`` if given, else the only split, else test / validation / train in that order."""
    if wanted:
        if wanted not in splits:
            raise UserInputError(f"dataset {source!r}: no split {wanted!r}; it has: {', '.join(splits)}")
        return wanted
    if len(splits) == 1:
        return splits[0]
    for name in SPLIT_PREFERENCE:
        if name in splits:
            return name
    raise UserInputError(f"dataset {source!r}: several splits ({', '.join(splits)}); choose one with --split")


def describe_columns(features) -> str:
    """``name (FeatureType), ...``: what error messages list so the user can pick a column."""
    return ", ".join(f"{name} ({type(feature).__name__})" for name, feature in features.items())


def detect_image_column(features, image_column: str | None, source: str) -> str:
    """The ``Image`` column (``image`` if several), or the override, checked to be an ``Image``."""
    import datasets

    described = describe_columns(features)
    if image_column is not None and image_column not in features:
        raise UserInputError(f"dataset {source!r}: no column {image_column!r}; columns: {described}")
    if image_column is None:
        images = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
        if not images:
            raise UserInputError(
                f"dataset {source!r}: no Image column (columns: {described}); name one with --image-column"
            )
        image_column = "image" if "image" in images else images[0]
        if len(images) > 1:
            logger.warning("several image columns (%s); using %r (override with --image-column)", images, image_column)
    if not isinstance(features[image_column], datasets.Image):
        raise UserInputError(f"dataset {source!r}: column {image_column!r} is not an Image feature ({described})")
    return image_column


def detect_columns(features, image_column: str | None, label_column: str | None, source: str) -> tuple[str, str]:
    """The image column (an ``Image`` feature) and label column (a ``ClassLabel``), or the overrides."""
    import datasets

    columns = list(features)
    described = describe_columns(features)
    if label_column and label_column not in features:
        raise UserInputError(f"dataset {source!r}: no column {label_column!r}; columns: {described}")
    image_column = detect_image_column(features, image_column, source)
    if label_column is None:
        labels = [name for name, feature in features.items() if isinstance(feature, datasets.ClassLabel)]
        if not labels:
            raise UserInputError(
                f"dataset {source!r}: no ClassLabel column (columns: {described}); name an integer label "
                "column with --label-column and give class names with --classnames"
            )
        label_column = "label" if "label" in labels else labels[0]
    if label_column not in columns or image_column == label_column:
        raise UserInputError(f"dataset {source!r}: bad label column {label_column!r} ({described})")
    return image_column, label_column


def read_name_file(path: str | Path, what: str) -> list[str]:
    """One name per line (blank lines and surrounding quotes dropped), or a JSON list."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: no such {what} file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            names = json.loads(text)
        except json.JSONDecodeError as error:
            raise UserInputError(f"{path}: invalid JSON ({error}); expected a list of strings") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserInputError(f"{path}: expected a JSON list of strings")
        return names
    return [line.strip() for line in text.splitlines() if line.strip()]


def _class_ids(feature, classnames: list[str] | None, source: str, label_column: str) -> list[str]:
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        ids = list(feature.names)
        if classnames is not None and len(classnames) != len(ids):
            raise UserInputError(
                f"--classnames has {len(classnames)} names but {source!r} column {label_column!r} has {len(ids)} classes"
            )
        return ids
    dtype = getattr(feature, "dtype", "")
    if not str(dtype).startswith(("int", "uint")):
        raise UserInputError(
            f"dataset {source!r}: label column {label_column!r} is {dtype or type(feature).__name__}, "
            "expected a ClassLabel or integer column"
        )
    if classnames is None:
        raise UserInputError(f"dataset {source!r}: label column {label_column!r} has no class names; pass --classnames FILE")
    return list(classnames)


def dataset_revision(dataset, requested: str | None) -> str | None:
    """The Hub commit the rows came from (the datasets cache path holds it), else the request."""
    for cache_file in getattr(dataset, "cache_files", []) or []:
        for part in Path(cache_file.get("filename", "")).parts:
            if _COMMIT.match(part):
                return part
    return requested


def local_files_identity(path: Path) -> list:
    return [
        (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
        if p.is_file() and ".cache" not in p.parts
    ]


def open_dataset(
    source: str,
    *,
    split: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    classnames_file: str | Path | None = None,
    revision: str | None = None,
) -> EvalDataset:
    """Load ``source`` and resolve split, columns, class ids and the names used in prompts."""
    wds_root = webdataset_root(source, revision, split)
    if wds_root is not None:
        if image_column or label_column:
            raise UserInputError(f"dataset {source!r} is in CLIP_benchmark's webdataset layout: its columns are "
                                 "fixed, drop --image-column/--label-column")
        return _open_webdataset(source, *wds_root, split, classnames_file)
    import datasets  # not needed for a webdataset folder, which is read in place

    splits = load_splits(source, revision)
    chosen = choose_split(sorted(splits), split, source)
    dataset = splits[chosen]
    features = dataset.features
    image_column, label_column = detect_columns(features, image_column, label_column, source)
    classnames = read_name_file(classnames_file, "class names") if classnames_file else None
    class_ids = unique_class_names(_class_ids(features[label_column], classnames, source, label_column))
    prompt_names = classnames if classnames is not None else [display_name(c) for c in class_ids]
    dataset = dataset.select_columns([image_column, label_column]).cast_column(image_column, datasets.Image(decode=False))
    local = Path(source).expanduser()
    identity = {
        "source": str(local.resolve()) if local.exists() else source,
        "split": chosen,
        "fingerprint": getattr(dataset, "_fingerprint", None),
        "files": local_files_identity(local) if local.is_dir() else None,
        "columns": [image_column, label_column],
        "rows": len(dataset),
    }
    cache_identity = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return EvalDataset(
        dataset=dataset,
        source=source,
        split=chosen,
        image_column=image_column,
        label_column=label_column,
        class_ids=class_ids,
        prompt_names=prompt_names,
        revision=dataset_revision(splits[chosen], revision),
        cache_identity=cache_identity,
        splits=sorted(splits),
    )


def webdataset_root(source: str, revision: str | None, split: str | None) -> tuple[Path, str | None] | None:
    """(local folder, revision) when ``source`` is in CLIP_benchmark's webdataset layout, else None.

    A Hub id named like CLIP_benchmark's (``clip-benchmark/*``, ``ORG/wds_*``) is downloaded first, one
    split only.
    """
    from letitwag.harness.wds import download_from_hub, is_wds_folder, looks_like_wds_hub_id

    path = Path(source).expanduser()
    if is_wds_folder(path):
        return path, revision
    if looks_like_wds_hub_id(source):
        return download_from_hub(source, revision, split)
    return None


def webdataset_identity(source: str, root: Path, split: str) -> str:
    """Cache identity of one split of a webdataset folder: its metadata files and tars (names, sizes, times)."""
    files = [entry for entry in local_files_identity(root)
             if entry[0].startswith(f"{split}/") or "/" not in entry[0]]
    return hashlib.sha256(json.dumps({"source": source, "split": split, "files": files}, default=str).encode()).hexdigest()


def _open_webdataset(source: str, root: Path, revision: str | None, split: str | None,
                     classnames_file: str | Path | None) -> EvalDataset:
    from letitwag.harness.wds import WdsRows, index_shards, read_layout

    layout = read_layout(root)
    if layout.dataset_type == "retrieval":
        raise UserInputError(f"dataset {source!r} is a retrieval dataset ({root}/dataset_type.txt); "
                             "evaluate it with --task retrieval")
    if layout.dataset_type == "multilabel":
        raise UserInputError(f"dataset {source!r} is multi-label ({root}/dataset_type.txt); letitwag evaluates "
                             "single-label classification and retrieval, not multi-label classification")
    chosen = choose_split(layout.splits, split, source)
    classnames = read_name_file(classnames_file, "class names") if classnames_file else layout.classnames
    if classnames is None:
        raise UserInputError(f"{root / 'classnames.txt'}: missing; pass the class names in label order with --classnames FILE")
    rows = WdsRows(index_shards(layout.shards(chosen)))
    return EvalDataset(
        dataset=rows, source=source, split=chosen, image_column=rows.image_column, label_column=rows.label_column,
        class_ids=unique_class_names(classnames), prompt_names=list(classnames), revision=revision,
        cache_identity=webdataset_identity(source, root, chosen), splits=layout.splits,
        templates=layout.templates, layout="webdataset",
    )
