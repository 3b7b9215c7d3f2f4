"""``folder:PATH`` — images already on disk: a concept-per-folder tree or webdataset tars.

Tree: ``PATH/<concept id or display name>/**/*.jpg``; a folder name is matched to a concept by
id, display name or alias ignoring case and punctuation (``Harriss_Hawk`` = ``harriss hawk``).
Images stay where they are (absolute paths in the manifest). Sidecars ``NAME.txt`` /
``NAME.json`` give caption / url / license, as in ``letitwag knn build``.

Webdataset: ``PATH`` is a ``.tar`` or a folder holding ``*.tar`` shards. Members are grouped by
key (the name up to the first dot of the basename); the concept comes from ``KEY.json``
(``concept_id``, else ``label`` / ``class``), else ``KEY.cls`` (a class index into the concept
list or a name), else ``KEY.txt`` when it names a concept. Tars are read as streams — nothing is
extracted by member name; image bytes are stored content-addressed under the source's work
folder — and only regular-file members below a size limit are read.
"""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

from letitwag.builders.collect.records import file_candidate, rejection, store_bytes
from letitwag.builders.collect.runner import Source, UnitResult
from letitwag.builders.knn.build import IMAGE_EXTENSIONS, sidecar_metadata
from letitwag.concepts import Concept, ConceptList
from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)

MAX_MEMBER_BYTES = 64 * 1024 * 1024


class FolderSource(Source):
    kind = "folder"

    @property
    def root(self) -> Path:
        root = Path(self.argument).expanduser()
        if not root.exists():
            raise UserInputError(f"--source {self.spec}: {root} does not exist; give a folder tree or webdataset tars")
        return root

    def _tars(self) -> list[Path]:
        root = self.root
        if root.is_file():
            if root.suffix != ".tar":
                raise UserInputError(f"--source {self.spec}: a single file must be a webdataset .tar")
            return [root]
        return sorted(root.glob("*.tar"))

    def units(self, concepts: ConceptList) -> list[str]:
        tars = self._tars()
        if tars:
            return [f"tar:{path.resolve()}" for path in tars]
        folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        if not folders:
            raise UserInputError(f"--source {self.spec}: no concept sub-folders and no .tar shards in {self.root}")
        return [f"dir:{path.resolve()}" for path in folders]

    def run_unit(self, unit: str, concepts: ConceptList, workdir: Path, manifest_dir: Path) -> UnitResult:
        kind, _, location = unit.partition(":")
        if kind == "dir":
            return self._run_folder(Path(location), concepts, manifest_dir)
        return self._run_tar(Path(location), concepts, workdir, manifest_dir)

    def _run_folder(self, folder: Path, concepts: ConceptList, manifest_dir: Path) -> UnitResult:
        concept = concepts.find(folder.name)
        if concept is None:
            logger.warning("%s: folder name matches no concept; skipped (rename it to a concept id)", folder)
            return UnitResult([], [rejection(self.kind, None, str(folder), "unknown_concept",
                                             f"folder {folder.name!r} matches no concept id, name or alias")])
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        rows = []
        for path in files:
            relative = path.relative_to(folder.parent).as_posix()
            rows.append(file_candidate(path, manifest_dir, candidate_id=f"{self.key}/{relative}", concept_id=concept.id,
                                       source=self.kind, **sidecar_metadata(path)))
        return UnitResult(rows, [])

    def _run_tar(self, tar_path: Path, concepts: ConceptList, workdir: Path, manifest_dir: Path) -> UnitResult:
        rows, rejected = [], []
        try:
            with tarfile.open(tar_path, mode="r|*") as archive:
                for key, members in _groups(archive, tar_path, rejected, self.kind):
                    self._tar_sample(tar_path, key, members, concepts, workdir, manifest_dir, rows, rejected)
        except (tarfile.TarError, OSError, EOFError) as error:
            rejected.append(rejection(self.kind, None, str(tar_path), "unreadable_tar", f"{type(error).__name__}: {error}"))
            logger.warning("%s: unreadable tar after %d samples (%s); the rest is recorded as rejected", tar_path,
                           len(rows), error)
        return UnitResult(rows, rejected)

    def _tar_sample(self, tar_path: Path, key: str, members: dict[str, bytes], concepts: ConceptList,
                    workdir: Path, manifest_dir: Path, rows: list, rejected: list) -> None:
        item = f"{tar_path.name}:{key}"
        image_ext = next((ext for ext in members if "." + ext.split(".")[-1] in IMAGE_EXTENSIONS), None)
        if image_ext is None:
            rejected.append(rejection(self.kind, None, item, "no_image", f"members {sorted(members)} hold no image"))
            return
        meta = _json_member(members.get("json"))
        concept, caption = _sample_concept(meta, members, concepts)
        if concept is None:
            rejected.append(rejection(self.kind, None, item, "unknown_concept",
                                      "no concept id in .json (concept_id/label/class), .cls or .txt"))
            return
        path = store_bytes(members[image_ext], workdir / "images", "." + image_ext.split(".")[-1])
        rows.append(file_candidate(
            path, manifest_dir, candidate_id=f"{self.key}/{tar_path.name}/{key}", concept_id=concept.id, source=self.kind,
            url=meta.get("url") if isinstance(meta.get("url"), str) else None,
            license=meta.get("license") if isinstance(meta.get("license"), str) else None,
            caption=caption,
        ))


def _groups(archive: tarfile.TarFile, tar_path: Path, rejected: list, kind: str):
    """Yield ``(key, {extension: bytes})`` for consecutive members sharing a key (webdataset order)."""
    key, members = None, {}
    for member in archive:
        if not member.isfile():
            continue
        directory, _, base = member.name.rpartition("/")
        stem, dot, extension = base.partition(".")
        if not dot:
            continue
        sample_key = f"{directory}/{stem}" if directory else stem
        if member.size > MAX_MEMBER_BYTES:
            rejected.append(rejection(kind, None, f"{tar_path.name}:{member.name}", "too_large",
                                      f"{member.size} bytes > {MAX_MEMBER_BYTES}"))
            continue
        if sample_key != key and members:
            yield key, members
            members = {}
        key = sample_key
        handle = archive.extractfile(member)
        members[extension.lower()] = handle.read() if handle else b""
    if members:
        yield key, members


def _json_member(data: bytes | None) -> dict:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _decode(data: bytes | None) -> str:
    return data.decode("utf-8", errors="replace").strip() if data else ""


def _sample_concept(meta: dict, members: dict[str, bytes], concepts: ConceptList) -> tuple[Concept | None, str | None]:
    """The sample's concept (json > cls > txt) and its caption (json caption, or a txt not used as the label)."""
    caption = meta.get("caption") if isinstance(meta.get("caption"), str) else None
    for field_name in ("concept_id", "label", "class"):
        value = meta.get(field_name)
        found = _lookup(value, concepts)
        if found is not None:
            return found, caption or (_decode(members.get("txt")) or None)
    if "cls" in members:
        found = _lookup(_decode(members["cls"]), concepts)
        if found is not None:
            return found, caption or (_decode(members.get("txt")) or None)
    text = _decode(members.get("txt"))
    found = concepts.find(text) if text else None
    return found, caption


def _lookup(value, concepts: ConceptList) -> Concept | None:
    """A concept from an id/name string or a class index (int or digit string)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit() and concepts.find(value) is None):
        number = int(value)
        return concepts[number] if 0 <= number < len(concepts) else None
    return concepts.find(value) if isinstance(value, str) and value else None
