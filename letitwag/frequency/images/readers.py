"""Image sources for tagging: folders, webdataset tars, parquet with image bytes, HF datasets.

Each source is cut into *shards* (small, picklable descriptions of a slice of the input) so the
engine can run, record and resume them independently. Reading a shard yields ``ImageRecord``s:
a sample id and the raw encoded bytes (or a read error). Decoding is separate
(``decode_image``) so every failure is counted by reason instead of crashing the run.

Sample ids are chosen to line up with the text side:

- folder: the file's path relative to the folder, without its extension (``a/b.jpg`` -> ``a/b``;
  the file stem for a flat folder);
- webdataset tar: the webdataset key, i.e. the member path up to the first dot of its basename
  (``00000/000000123.jpg`` -> ``00000/000000123``), the same key as its ``.txt`` / ``.json`` caption;
- parquet: the ``--id-column`` value, else ``<file>:<row>`` with the file named relative to the
  common folder of the parquet inputs;
- HF datasets: the ``--id-column`` value, else ``<name>/<split>:<row>``.

The last two are the caption readers' defaults (``letitwag.frequency.text.readers``), so tagging the
same parquet / dataset that ``letitwag frequency count`` read gives ids that join. An id column is
never guessed, on either side: pass the same ``--id-column`` to both commands (e.g. ``key`` for
img2dataset output).
"""

from __future__ import annotations

import glob
import io
import logging
import os
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from letitwag.errors import UserInputError
from letitwag.frequency.text.readers import HF_PREFIX, _id_prefixes, _open_hf

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
IMAGE_COLUMN_NAMES = ("image", "jpg", "jpeg", "png", "webp", "img", "image_bytes")


@dataclass(frozen=True)
class ImageShard:
    """A slice of one input: ``kind`` is folder/tar/parquet/hf; ``items`` is kind-specific."""

    kind: str
    source: str
    items: tuple = ()
    start: int = 0
    stop: int = 0
    image_column: str | None = None
    id_column: str | None = None
    split: str | None = None
    id_prefix: str = ""

    @property
    def name(self) -> str:
        """A stable, file-name-safe id for completion markers."""
        stem = Path(self.source.rstrip("/")).name
        return f"{self.kind}-{stem}-{self.split or ''}-{self.start}"


@dataclass
class ImageRecord:
    sample_id: str
    data: bytes | None
    error: str | None = None


# --- planning -------------------------------------------------------------------------------

def plan_shards(
    specs: list[str],
    shard_size: int = 1000,
    image_column: str | None = None,
    id_column: str | None = None,
    split: str | None = None,
) -> list[ImageShard]:
    """Cut every input into shards, checking each input is readable before any work starts.

    ``split`` picks one split of HF datasets; by default all splits are tagged, as the caption
    readers count all of them.
    """
    if shard_size < 1:
        raise UserInputError(f"--shard-size must be at least 1, got {shard_size}")
    specs = _expand_globs(specs)
    if not specs:
        raise UserInputError("no image input given; pass --images FOLDER|TAR|PARQUET|hf:DATASET")
    parquet_prefixes = _id_prefixes([spec for spec in specs if spec.endswith(".parquet") and Path(spec).is_file()])
    shards: list[ImageShard] = []
    for spec in specs:
        path = Path(spec)
        if spec.startswith(HF_PREFIX):
            shards += _plan_hf("hf", spec.removeprefix(HF_PREFIX), shard_size, image_column, id_column, split)
        elif path.is_dir() and _is_saved_dataset(path):
            shards += _plan_hf("hf-disk", spec, shard_size, image_column, id_column, split)
        elif path.is_dir():
            shards += _plan_folder(path, shard_size)
        elif not path.exists():
            raise UserInputError(f"{spec}: no such image folder, tar or parquet file (HF datasets: hf:NAME_OR_DIR)")
        elif spec.endswith(TAR_SUFFIXES):
            _check_tar(path)
            shards.append(ImageShard("tar", str(path)))
        elif spec.endswith(".parquet"):
            shards += _plan_parquet(path, shard_size, image_column, id_column, parquet_prefixes[spec])
        else:
            raise UserInputError(f"{spec}: unknown image input; give a folder, a .tar, a .parquet or hf:DATASET")
    return shards


def _expand_globs(specs: list[str]) -> list[str]:
    """Patterns the shell did not expand (quoted, or too many files): sorted matches, as the text side does."""
    expanded: list[str] = []
    for spec in specs:
        if not spec.startswith(HF_PREFIX) and not Path(spec).exists() and glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise UserInputError(f"{spec}: the pattern matches no file")
            expanded += matches
        else:
            expanded.append(spec)
    return list(dict.fromkeys(expanded))


def _is_saved_dataset(path: Path) -> bool:
    """A ``save_to_disk`` folder (the same test as the caption readers')."""
    return (path / "dataset_dict.json").exists() or (path / "state.json").exists()


def _plan_folder(folder: Path, shard_size: int) -> list[ImageShard]:
    files = sorted(
        str(p.relative_to(folder).as_posix())
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise UserInputError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return [
        ImageShard("folder", str(folder), tuple(files[i : i + shard_size]), i, min(i + shard_size, len(files)))
        for i in range(0, len(files), shard_size)
    ]


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def _check_tar(path: Path) -> None:
    try:
        with tarfile.open(path, "r:*") as archive:
            archive.next()
    except (tarfile.TarError, OSError) as error:
        raise UserInputError(f"{path}: not a readable tar archive ({_one_line(error)})") from None


def _pick_column(names: list[str], wanted: str | None, candidates: tuple, path: str, what: str) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise UserInputError(f"{path}: no {what} column {wanted!r} (columns: {', '.join(names)}); fix --{what}-column")
        return wanted
    return next((name for name in candidates if name in names), None)


def _parquet_image_column(schema, wanted: str | None, path: Path) -> str:
    import pyarrow as pa

    names = schema.names
    column = _pick_column(names, wanted, IMAGE_COLUMN_NAMES, str(path), "image")
    if column is None:
        for field in schema:
            is_struct_with_bytes = pa.types.is_struct(field.type) and field.type.get_field_index("bytes") >= 0
            if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type) or is_struct_with_bytes:
                return field.name
        raise UserInputError(f"{path}: no column of image bytes found; pass --image-column (columns: {', '.join(names)})")
    return column


def _plan_parquet(path: Path, shard_size: int, image_column: str | None, id_column: str | None,
                  id_prefix: str) -> list[ImageShard]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
    except Exception as error:  # noqa: BLE001 - any arrow error means the same thing to the user
        raise UserInputError(f"{path}: not a readable parquet file ({_one_line(error)})") from None
    schema = meta.schema_arrow
    image = _parquet_image_column(schema, image_column, path)
    ids = _pick_column(schema.names, id_column, (), str(path), "id")
    rows = meta.metadata.num_rows
    return [
        ImageShard("parquet", str(path), (), i, min(i + shard_size, rows), image, ids, None, id_prefix)
        for i in range(0, rows, shard_size)
    ]


def _hf_splits(fmt: str, location: str, split: str | None) -> dict:
    splits = _open_hf(fmt, location)
    if split is None:
        return splits
    if split not in splits:
        raise UserInputError(f"{location}: no split {split!r} (splits: {', '.join(splits)}); fix --split")
    return {split: splits[split]}


def _hf_image_column(dataset, wanted: str | None, where: str) -> str:
    import datasets

    names = list(dataset.features)
    if wanted is not None:
        return _pick_column(names, wanted, (), where, "image")
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            return name
    column = _pick_column(names, None, IMAGE_COLUMN_NAMES, where, "image")
    if column is None:
        raise UserInputError(f"{where}: no Image feature found; pass --image-column (columns: {', '.join(names)})")
    return column


def _plan_hf(fmt: str, location: str, shard_size: int, image_column: str | None, id_column: str | None,
             split: str | None) -> list[ImageShard]:
    name = Path(location).name if fmt == "hf-disk" else location
    shards = []
    for split_name, dataset in _hf_splits(fmt, location, split).items():
        where = f"{location} (split {split_name})"
        image = _hf_image_column(dataset, image_column, where)
        ids = _pick_column(list(dataset.features), id_column, (), where, "id")
        shards += [
            ImageShard(fmt, location, (dataset._fingerprint,), i, min(i + shard_size, len(dataset)), image, ids,
                       split_name, f"{name}/{split_name}")
            for i in range(0, len(dataset), shard_size)
        ]
    return shards


# --- reading --------------------------------------------------------------------------------

def read_shard(shard: ImageShard) -> Iterator[ImageRecord]:
    """The records of one shard, in a fixed order.

    A bad image is a record with an error (a counted skip); a file that cannot be read at all
    (changed or corrupted since planning) stops the shard with a one-line error naming it, and
    the shards already finished are kept.
    """
    import pyarrow as pa

    readers = {"folder": _read_folder, "tar": _read_tar, "parquet": _read_parquet, "hf": _read_hf, "hf-disk": _read_hf}
    try:
        yield from readers[shard.kind](shard)
    except (OSError, pa.ArrowException) as error:
        raise UserInputError(
            f"{shard.source}: cannot read rows {shard.start}-{shard.stop} ({_one_line(error)}); fix or remove the "
            "input and rerun: finished shards are kept"
        ) from None


def _read_folder(shard: ImageShard) -> Iterator[ImageRecord]:
    root = Path(shard.source)
    for relative in shard.items:
        sample_id = relative.rsplit(".", 1)[0]
        try:
            yield ImageRecord(sample_id, (root / relative).read_bytes())
        except OSError:
            yield ImageRecord(sample_id, None, "unreadable_file")


def webdataset_key(member_name: str) -> tuple[str, str]:
    """(key, extension) of a tar member the way webdataset splits it: at the basename's first dot."""
    directory, _, basename = member_name.rpartition("/")
    stem, dot, extension = basename.partition(".")
    return (f"{directory}/{stem}" if directory else stem), (extension.lower() if dot else "")


def _read_tar(shard: ImageShard) -> Iterator[ImageRecord]:
    """Stream a tar without extracting it to disk; each key's first image member is its image."""
    seen: set[str] = set()
    try:
        with tarfile.open(shard.source, "r|*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                key, extension = webdataset_key(member.name)
                if "." + extension.rsplit(".", 1)[-1] not in IMAGE_EXTENSIONS or key in seen:
                    continue
                seen.add(key)
                handle = archive.extractfile(member)
                yield ImageRecord(key, handle.read() if handle is not None else None)
    except (tarfile.TarError, OSError, EOFError) as error:
        logger.warning("%s: tar ends early or is corrupt after %d images (%s)", shard.source, len(seen),
                       _one_line(error))
        yield ImageRecord(f"{shard.source}#after-{len(seen)}", None, "corrupt_tar")


def _image_bytes(value) -> bytes | None:
    """Bytes from a binary cell or an HF-style ``{"bytes": ..., "path": ...}`` struct cell."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        path = value.get("path")
        if path and os.path.isfile(path):
            return Path(path).read_bytes()
        return None
    return value


def _records(ids: list | None, images: list, start: int, prefix: str) -> Iterator[ImageRecord]:
    """Records of consecutive rows from ``start``; a row without an id gets ``<prefix>:<row>``."""
    for offset, value in enumerate(images):
        has_id = ids is not None and ids[offset] is not None
        sample_id = str(ids[offset]) if has_id else f"{prefix}:{start + offset}"
        try:
            data = _image_bytes(value)
        except OSError:
            data = None
        yield ImageRecord(sample_id, data, None if data else "missing_image")


def _read_parquet(shard: ImageShard) -> Iterator[ImageRecord]:
    import pyarrow.parquet as pq

    columns = [shard.image_column] + ([shard.id_column] if shard.id_column else [])
    handle = pq.ParquetFile(shard.source)
    position = 0
    for batch in handle.iter_batches(batch_size=min(1024, max(shard.stop - shard.start, 1)), columns=columns):
        end = position + batch.num_rows
        if end > shard.start and position < shard.stop:
            lo, hi = max(shard.start - position, 0), min(shard.stop - position, batch.num_rows)
            piece = batch.slice(lo, hi - lo)
            ids = piece.column(shard.id_column).to_pylist() if shard.id_column else None
            yield from _records(ids, piece.column(shard.image_column).to_pylist(), position + lo, shard.id_prefix)
        position = end
        if position >= shard.stop:
            break


def _read_hf(shard: ImageShard) -> Iterator[ImageRecord]:
    import datasets

    dataset = _open_hf(shard.kind, shard.source)[shard.split].select(range(shard.start, shard.stop))
    if isinstance(dataset.features[shard.image_column], datasets.Image):
        # Undecoded {bytes, path} cells: we decode ourselves so that a bad image is a counted skip.
        dataset = dataset.cast_column(shard.image_column, datasets.Image(decode=False))
    ids = dataset[shard.id_column] if shard.id_column else None
    yield from _records(ids, dataset[shard.image_column], shard.start, shard.id_prefix)


# --- decoding -------------------------------------------------------------------------------

def decode_image(data: bytes, draft_size: int | None = None):
    """(RGB PIL image, None) or (None, skip reason); never raises for bad image data.

    With ``draft_size``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps
    both sides >= ``draft_size``: the model resizes to its input size anyway, and a reduced
    decode of a large JPEG is several times faster.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        return None, "empty"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if draft_size:
                image.draft("RGB", (draft_size, draft_size))
            image.load()
        return image.convert("RGB"), None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, "too_many_pixels"
    except UnidentifiedImageError:
        return None, "not_an_image"
    except (OSError, SyntaxError, ValueError):
        return None, "corrupt_image"
