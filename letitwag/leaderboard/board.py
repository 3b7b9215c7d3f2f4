"""The board: a plain folder (a git or Hugging Face dataset repo in production).

Layout::

    board.json                       # letitwag.board/1: the dataset every submission must match
    labels.parquet                   # the dataset's true label per sample (sample_index, label)
    submissions/<model>/<revision>/<precision>_<prompt set>/
        results.json  predictions.parquet  submission.json  verification.json

Why a folder of files: anyone can clone it and re-verify every entry with the same code; a new
entry is a new folder, so pull requests never conflict. An entry is added atomically: it is
assembled in ``.staging/`` and renamed into place, so a crash leaves no half entry.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from letitwag import __version__
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json, atomic_write_with, file_sha256
from letitwag.leaderboard.submission import (
    METADATA_FILE,
    PREDICTIONS_FILE,
    REQUIRED_FILES,
    RESULTS_FILE,
    SizeLimits,
    SubmissionRejected,
    slug,
)

BOARD_FORMAT = "letitwag.board/1"
VERIFICATION_FORMAT = "letitwag.verification/1"
BOARD_FILE = "board.json"
LABELS_FILE = "labels.parquet"
SUBMISSIONS_DIR = "submissions"
VERIFICATION_FILE = "verification.json"
STAGING_DIR = ".staging"
# The fields of ``results.json``'s ``dataset`` object that must equal the board's.
DATASET_IDENTITY = ("id", "split", "revision", "fingerprint", "num_samples", "num_classes", "class_list_hash")


class BoardError(UserInputError):
    """A board folder that cannot be used; the message says how to create or fix it."""


@dataclass
class BoardConfig:
    """What ``board.json`` holds. ``tolerance`` is the largest accepted |claimed - recomputed| per metric."""

    dataset: dict[str, Any]
    title: str = "Let it Wag! leaderboard"
    frequency_corpus: str = "laion400m"
    frequency_count_type: str = "matched"
    tolerance: float = 1e-6
    max_bootstrap_samples: int = 2000
    include_paper_models: bool = True
    excluded_samples: list[int] = field(default_factory=list)
    limits: SizeLimits = field(default_factory=SizeLimits)

    def to_json(self) -> dict[str, Any]:
        return {"format": BOARD_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> "BoardConfig":
        if data.get("format") != BOARD_FORMAT:
            raise BoardError(f"{where}: format must be {BOARD_FORMAT!r}; "
                             "create a board with `letitwag leaderboard init`")
        body = {k: v for k, v in data.items() if k != "format"}
        try:
            body["limits"] = SizeLimits(**body.get("limits", {}))
            config = cls(**body)
        except TypeError as error:
            raise BoardError(f"{where}: {error}") from None
        missing = [k for k in (*DATASET_IDENTITY, "class_names") if k not in config.dataset]
        if missing:
            raise BoardError(f"{where}: dataset lacks {', '.join(missing)}")
        return config


@dataclass(frozen=True)
class EntryKey:
    """What makes two submissions the same run: model, checkpoint revision, precision, prompt set,
    and for text-to-image runs the task and the judge (a T2I number means something only under
    its judge, so the same generator judged twice is two entries)."""

    model: str
    revision: str
    precision: str
    prompt_set: str
    task: str = "classification"
    judge: str | None = None

    def folder(self) -> Path:
        last = f"{slug(self.precision)}_{slug(self.prompt_set)}"
        if self.task != "classification":
            judge = hashlib.sha256(str(self.judge).encode("utf-8")).hexdigest()[:12]
            last += f"_{slug(self.task)}-{judge}"
        return Path(slug(self.model)) / slug(self.revision) / last

    def normalised(self) -> tuple[str, ...]:
        return (self.model.casefold(), self.revision, self.precision.casefold(), self.prompt_set.casefold(),
                self.task, self.judge or "")

    def to_json(self) -> dict[str, Any]:
        """The stored key; classification keys keep their original four fields (boards stay re-verifiable)."""
        record = asdict(self)
        if self.task == "classification" and self.judge is None:
            del record["task"], record["judge"]
        return record

    def describe(self) -> str:
        text = f"{self.model} (revision {self.revision}, {self.precision}, prompts {self.prompt_set}"
        return text + (f", {self.task} judged by {self.judge})" if self.task != "classification" else ")")


class Board:
    """A board folder, or (``root=None``) the built-in board holding only the paper's models."""

    def __init__(self, root: Path | None, config: BoardConfig | None) -> None:
        self.root = root
        self.config = config

    @classmethod
    def open(cls, root: str | Path) -> "Board":
        root = Path(root)
        path = root / BOARD_FILE
        if not path.is_file():
            raise BoardError(f"{path}: no board here; create one with `letitwag leaderboard init --board {root} "
                             "--reference RUN_DIR`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise BoardError(f"{path}: invalid JSON ({str(error).splitlines()[0]})") from None
        return cls(root, BoardConfig.from_json(data, str(path)))

    @classmethod
    def paper_only(cls) -> "Board":
        """The board the site shows without ``--board``: the paper's 40 models, nothing submitted."""
        return cls(None, None)

    @property
    def include_paper_models(self) -> bool:
        return self.config is None or self.config.include_paper_models

    @property
    def frequency_source(self) -> tuple[str, str]:
        if self.config is None:
            return BoardConfig.frequency_corpus, BoardConfig.frequency_count_type
        return self.config.frequency_corpus, self.config.frequency_count_type

    def require_config(self) -> BoardConfig:
        if self.config is None or self.root is None:
            raise BoardError("this needs a board folder (--board DIR); create one with `letitwag leaderboard init`")
        return self.config

    @functools.cached_property
    def labels(self) -> np.ndarray:
        """The true class index of every sample, in sample order; -1 for the board's excluded samples."""
        config = self.require_config()
        path = self.root / LABELS_FILE
        try:
            table = pq.read_table(path, columns=["sample_index", "label"])
        except (OSError, pa.ArrowInvalid) as error:
            raise BoardError(f"{path}: cannot read the board's labels ({str(error).splitlines()[0]})") from None
        num_samples = int(config.dataset["num_samples"])
        index = table.column("sample_index").to_numpy()
        excluded = np.asarray(config.excluded_samples, dtype=np.int64)
        if excluded.size and (excluded.min() < 0 or excluded.max() >= num_samples):
            raise BoardError(f"{self.root / BOARD_FILE}: excluded_samples must lie in 0..{num_samples - 1}")
        included = np.ones(num_samples, dtype=bool)
        included[excluded] = False  # a mask, not setdiff1d: no sort of every sample index
        if not np.array_equal(index, np.flatnonzero(included)):
            raise BoardError(f"{path}: must list every sample_index 0..{num_samples - 1} except the excluded ones, "
                             "once, in order")
        labels = np.full(num_samples, -1, dtype=np.int64)
        labels[index] = table.column("label").to_numpy()
        return labels

    def entry_folders(self) -> Iterator[Path]:
        """Folders of stored entries (those with a verification record), in a stable order."""
        if self.root is None:
            return iter(())
        return iter(sorted(p.parent for p in (self.root / SUBMISSIONS_DIR).glob(f"*/*/*/{VERIFICATION_FILE}")))

    def keys(self) -> set[tuple[str, ...]]:
        keys = set()
        for folder in self.entry_folders():
            record = json.loads((folder / VERIFICATION_FILE).read_text(encoding="utf-8"))
            keys.add(EntryKey(**record["key"]).normalised())
        return keys


def init_from_reference(root: str | Path, run_dir: str | Path, **options: Any) -> Board:
    """Create a board whose dataset (identity and labels) is that of a trusted, complete harness run."""
    from letitwag.leaderboard.predictions import read_reference_labels
    from letitwag.leaderboard.submission import check_results_format, read_json

    run_dir = Path(run_dir)
    results_path = run_dir / RESULTS_FILE
    if not results_path.is_file():
        raise BoardError(f"{results_path}: missing; --reference must be a harness output folder")
    results = read_json(results_path.read_bytes(), results_path)
    check_results_format(results, results_path)
    dataset = results.get("dataset")
    if not isinstance(dataset, dict) or any(k not in dataset for k in (*DATASET_IDENTITY, "class_names")):
        raise BoardError(f"{results_path}: dataset must give {', '.join(DATASET_IDENTITY)} and class_names")
    if (results.get("config") or {}).get("limit") is not None:
        raise BoardError(f"{results_path}: a --limit run cannot define a board; use a full run")
    labels = read_reference_labels(run_dir / PREDICTIONS_FILE, int(dataset["num_samples"]), int(dataset["num_classes"]))
    return init_board(root, results, labels, **options)


def init_board(root: str | Path, reference_results: dict[str, Any], labels: np.ndarray, *,
               frequency_corpus: str = "laion400m", include_paper_models: bool = True,
               title: str = "Let it Wag! leaderboard") -> Board:
    """Create ``board.json`` + ``labels.parquet`` from a trusted reference run's labels (-1 = excluded sample)."""
    root = Path(root)
    if (root / BOARD_FILE).exists():
        raise BoardError(f"{root / BOARD_FILE}: a board already exists here")
    dataset = {k: reference_results["dataset"][k] for k in (*DATASET_IDENTITY, "class_names")}
    present = np.flatnonzero(labels >= 0)
    config = BoardConfig(dataset=dataset, title=title, frequency_corpus=frequency_corpus,
                         include_paper_models=include_paper_models,
                         excluded_samples=np.flatnonzero(labels < 0).tolist())
    table = pa.table({"sample_index": pa.array(present, pa.int64()),
                      "label": pa.array(labels[present], pa.int32())})
    atomic_write_with(root / LABELS_FILE, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    atomic_write_json(root / BOARD_FILE, config.to_json())
    (root / SUBMISSIONS_DIR).mkdir(exist_ok=True)
    return Board.open(root)


def store_entry(board: Board, source: Path, key: EntryKey, file_hashes: dict[str, str],
                record: dict[str, Any]) -> Path:
    """Copy a validated submission into the board atomically; refuse an existing key.

    ``file_hashes`` are the sha256 of the bytes that were validated: a copy that differs (the
    submission changed meanwhile) is refused rather than stored unverified.
    """
    board.require_config()
    final = board.root / SUBMISSIONS_DIR / key.folder()
    if key.normalised() in board.keys() or final.exists():
        raise SubmissionRejected(f"duplicate submission: {key.describe()} is already on the board at {final}")
    staging_root = board.root / STAGING_DIR
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="entry-", dir=staging_root))
    try:
        for name in REQUIRED_FILES:
            shutil.copyfile(source / name, staging / name)
            if file_sha256(staging / name) != file_hashes[name]:
                raise SubmissionRejected(f"{source / name}: changed while it was being validated; submit again")
        atomic_write_json(staging / VERIFICATION_FILE, {
            "format": VERIFICATION_FORMAT, "key": key.to_json(), "verified_by": f"letitwag {__version__}",
            "verified_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "sha256": file_hashes, **record})
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, final)  # atomic; fails if another add created the same entry meanwhile
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if final.exists():
            raise SubmissionRejected(f"duplicate submission: {final} was added meanwhile") from None
        raise BoardError(f"{final}: could not store the entry ({error})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def read_entry(folder: Path) -> dict[str, Any]:
    """A stored entry's files as dicts (strict JSON: a hand-edited NaN is an error, not a number)."""
    from letitwag.leaderboard.submission import read_json

    return {
        "results": read_json((folder / RESULTS_FILE).read_bytes(), folder / RESULTS_FILE),
        "metadata": read_json((folder / METADATA_FILE).read_bytes(), folder / METADATA_FILE),
        "verification": read_json((folder / VERIFICATION_FILE).read_bytes(), folder / VERIFICATION_FILE),
        "has_predictions": (folder / PREDICTIONS_FILE).is_file(),
    }
