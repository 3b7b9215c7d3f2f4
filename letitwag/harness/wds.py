"""CLIP_benchmark's webdataset layout, read in place: a local folder or a ``clip-benchmark/wds_*`` Hub id.

Why: the collection researchers use for zero-shot evaluation (ImageNet-1k, CIFAR, Cars, ...,
MS-COCO and Flickr30k captions) is published in this layout, and a user moving from
CLIP_benchmark should be able to point the harness at the same files. The layout is::

    <root>/<split>/nshards.txt          number of shards n
    <root>/<split>/0.tar ... (n-1).tar   samples
    <root>/dataset_type.txt              "retrieval" | "multilabel" | (absent: classification)
    <root>/classnames.txt                class names in label order (classification)
    <root>/zeroshot_classification_templates.txt   one "{c}" template per line

A sample is the run of consecutive tar members sharing a key (the member name up to the first
dot of its last path component, as webdataset groups them): ``KEY.webp|png|jpg|jpeg`` (the first
of these present, in that order), ``KEY.cls`` (an integer label) or ``KEY.txt`` (captions, one per
line). Samples are numbered in shard order, then member order, exactly as CLIP_benchmark
iterates them.

Nothing is extracted: one pass over each tar's headers records where every image lies (labels and
captions, a few bytes each, are read then), and an image is read later by offset from the tar
itself. Member names never reach the file system, so a hostile name cannot write anywhere.
"""

from __future__ import annotations

import logging
import posixpath
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")
HUB_ORGANISATION = "clip-benchmark"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def looks_like_wds_hub_id(source: str) -> bool:
    """``clip-benchmark/<name>`` or ``ORG/wds_<name>``: CLIP_benchmark's naming on the Hub."""
    if Path(source).expanduser().exists() or source.count("/") != 1 or source.startswith((".", "/", "~")):
        return False
    organisation, name = source.split("/")
    return organisation == HUB_ORGANISATION or name.startswith("wds_")


def is_wds_folder(path: Path) -> bool:
    """A local folder in the layout: some ``<split>/nshards.txt``."""
    return path.is_dir() and any(path.glob("*/nshards.txt"))


def _read_lines(path: Path) -> list[str] | None:
    """Stripped lines of a metadata file (CLIP_benchmark keeps blank lines out of names), or None."""
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class WdsLayout:
    """The metadata of one dataset folder (no tar is opened)."""

    root: Path
    splits: list[str]
    dataset_type: str  # "classification" | "retrieval" | "multilabel"
    classnames: list[str] | None
    templates: list[str] | None

    def shards(self, split: str) -> list[Path]:
        """The split's tar files, checked to exist, in shard order."""
        count_file = self.root / split / "nshards.txt"
        try:
            count = int(count_file.read_text(encoding="utf-8").strip())
        except ValueError:
            raise UserInputError(f"{count_file}: expected the number of shards (an integer)") from None
        tars = [self.root / split / f"{index}.tar" for index in range(count)]
        missing = [str(path) for path in tars if not path.is_file()]
        if missing:
            raise UserInputError(f"{count_file} says {count} shards but {missing[0]} is missing "
                                 f"({len(missing)} missing); download the whole split")
        return tars


def read_layout(root: Path) -> WdsLayout:
    """Read the folder's metadata files; the dataset type defaults to classification, as in CLIP_benchmark."""
    root = Path(root)
    splits = sorted(path.parent.name for path in root.glob("*/nshards.txt"))
    if not splits:
        raise UserInputError(f"{root}: no <split>/nshards.txt; not a CLIP_benchmark webdataset folder")
    kind = _read_lines(root / "dataset_type.txt")
    dataset_type = kind[0].lower() if kind else "classification"
    return WdsLayout(root, splits, dataset_type, _read_lines(root / "classnames.txt"),
                     _read_lines(root / "zeroshot_classification_templates.txt"))


def download_from_hub(repo_id: str, revision: str | None, split: str | None) -> tuple[Path, str | None] | None:
    """Fetch ``repo_id``'s metadata, then the tars of one split, with ``huggingface_hub``.

    Returns the local snapshot folder and the commit it holds, or None when a repository outside
    ``clip-benchmark`` named ``wds_*`` turns out not to be in the layout (it is then loaded as an
    ordinary Hub dataset). Only the chosen split's tars are downloaded (``allow_patterns``); files
    already in the Hub cache are reused, and with ``HF_HUB_OFFLINE=1`` a cached snapshot is used as is.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from letitwag.harness.data import choose_split

    def fetch(patterns: list[str]) -> Path:
        try:
            return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=patterns))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UserInputError(f"dataset {repo_id!r}: cannot download it from the Hub ({first[:300]}); "
                                 "check the id and the network, or pass a local copy with --dataset DIR") from None

    metadata = fetch(["*.txt"])
    if not is_wds_folder(metadata) and not repo_id.startswith(f"{HUB_ORGANISATION}/"):
        return None
    layout = read_layout(metadata)
    chosen = choose_split(layout.splits, split, repo_id)
    root = fetch(["*.txt", f"{chosen}/*"])
    return root, root.name if _COMMIT.match(root.name) else revision


@dataclass
class WdsSamples:
    """Where each sample's parts lie: per sample, its shard, image offset/size, label and captions."""

    shards: list[Path]
    keys: list[str]
    shard: np.ndarray  # int32, index into ``shards``
    image_offset: np.ndarray  # int64, -1 when the sample has no image
    image_size: np.ndarray  # int64
    labels: np.ndarray  # int64, -1 when the sample has no (valid) .cls
    captions: list[list[str] | None]  # ``str.splitlines`` of KEY.txt, as CLIP_benchmark reads it

    def __len__(self) -> int:
        return len(self.keys)


def _sample_key(name: str) -> tuple[str, str] | None:
    """(key, lower-cased extension) of a member name, as webdataset splits it; None without a dot."""
    directory, base = posixpath.split(name)
    if "." not in base:
        return None
    stem, extension = base.split(".", 1)
    return posixpath.join(directory, stem), extension.lower()


def _parse_label(data: bytes, where: str) -> int:
    try:
        return int(data.decode("utf-8").strip())
    except (UnicodeDecodeError, ValueError):
        logger.warning("%s: not an integer label; the sample is skipped", where)
        return -1


def index_shards(shards: list[Path]) -> WdsSamples:
    """One pass over every tar's headers: group members into samples and record their parts."""
    from tqdm import tqdm

    keys: list[str] = []
    shard_ids, offsets, sizes, labels = [], [], [], []
    captions: list[list[str] | None] = []
    for shard_id, path in enumerate(tqdm(shards, desc="indexing shards", unit="tar", disable=len(shards) < 4)):
        try:
            archive = tarfile.open(path, mode="r:")  # uncompressed, random access: headers only
        except tarfile.ReadError as error:
            raise UserInputError(f"{path}: not a readable uncompressed tar ({error}); re-download the shard") from None
        with archive:
            current = None
            found: dict[str, tuple[int, int]] = {}
            for member in archive:
                if not member.isfile():
                    continue
                split = _sample_key(member.name)
                if split is None:
                    continue
                key, extension = split
                if key != current:
                    current = key
                    keys.append(key)
                    shard_ids.append(shard_id)
                    offsets.append(-1)
                    sizes.append(0)
                    labels.append(-1)
                    captions.append(None)
                    found = {}
                if extension in IMAGE_EXTENSIONS:
                    found[extension] = (member.offset_data, member.size)
                    best = next(found[e] for e in IMAGE_EXTENSIONS if e in found)
                    offsets[-1], sizes[-1] = best
                elif extension == "cls":
                    labels[-1] = _parse_label(archive.extractfile(member).read(), f"{path}:{member.name}")
                elif extension == "txt":
                    captions[-1] = archive.extractfile(member).read().decode("utf-8", errors="replace").splitlines()
    return WdsSamples(list(shards), keys, np.asarray(shard_ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64),
                      np.asarray(sizes, dtype=np.int64), np.asarray(labels, dtype=np.int64), captions)


class WdsRows:
    """Row access to a split's samples, like a ``datasets.Dataset`` with an undecoded image column.

    ``rows[i]`` is ``{"image": {"bytes": ..., "path": None}, "label": int}``; the bytes are read
    by offset from the tar (a fresh handle per read, so DataLoader workers share no file position).
    """

    image_column = "image"
    label_column = "label"

    def __init__(self, samples: WdsSamples) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        samples = self.samples
        offset = int(samples.image_offset[index])
        data = None
        if offset >= 0:
            with open(samples.shards[int(samples.shard[index])], "rb") as handle:
                handle.seek(offset)
                data = handle.read(int(samples.image_size[index]))
        return {self.image_column: {"bytes": data, "path": None}, self.label_column: int(samples.labels[index])}
