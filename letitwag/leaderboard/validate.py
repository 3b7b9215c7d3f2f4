"""``validate``: the one gate every submission passes before it touches a board.

Order matters for the messages a submitter sees: cheap structural checks first (files, sizes,
JSON, versions, metadata), then identity (same dataset as the board, a full run, a real model),
then the expensive part (predictions against the board's labels, every metric recomputed), and
last the duplicate check. Each file is read once; what is checked is what ``add`` stores.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from letitwag.errors import UserInputError
from letitwag.leaderboard.board import DATASET_IDENTITY, Board, EntryKey, store_entry
from letitwag.leaderboard.frequencies import class_concepts_for, frequency_counts_for
from letitwag.leaderboard.predictions import check_predictions
from letitwag.leaderboard.retrieval import NOT_STORED_REASON, check_retrieval_predictions, recompute_retrieval
from letitwag.leaderboard.recompute import bootstrap_settings, compare_metrics, recompute_classification
from letitwag.leaderboard.submission import (
    METADATA_FILE,
    PREDICTIONS_FILE,
    REQUIRED_FILES,
    RESULTS_FILE,
    Metadata,
    SubmissionRejected,
    check_files,
    check_results_format,
    clean_text,
    parse_metadata,
    read_json,
    require,
    short_repr,
)
from letitwag.leaderboard.t2i import check_t2i_identity, check_t2i_predictions, judge_label, recompute_t2i

TASKS = ("classification", "t2i", "retrieval")
# Why a plumbing run is kept at all: it proves the whole chain (harness -> gate -> board -> site)
# works end to end without any downloaded weights. Its numbers mean nothing, so it is never ranked.
PLUMBING_REASON = "plumbing run (random weights): its numbers are meaningless"


@dataclass(frozen=True)
class ValidatedSubmission:
    """A submission that passed every check, with what ``add`` needs to store it."""

    folder: Path
    results: dict[str, Any]
    metadata: Metadata
    key: EntryKey
    file_hashes: dict[str, str]
    not_ranked_reason: str | None
    plumbing: bool = False

    @property
    def ranked(self) -> bool:
        return self.not_ranked_reason is None

    def ensure_storable(self) -> None:
        """Refuse, in one line, a submission the board validates but does not keep (retrieval, for now)."""
        if self.key.task == "retrieval":
            raise SubmissionRejected(f"{self.folder}: {NOT_STORED_REASON}; `letitwag leaderboard validate` checks it")

    def record(self) -> dict[str, Any]:
        """What the board's ``verification.json`` says about this entry beyond key and hashes."""
        size = ({"num_images": self.results["metrics"]["num_images"]} if self.key.task == "t2i"
                else {"num_samples": self.results["dataset"]["num_samples"]})
        return {"ranked": self.ranked, "not_ranked_reason": self.not_ranked_reason, "plumbing": self.plumbing,
                **size}


def _check_run(results: dict[str, Any], where: Path, plumbing: bool) -> str:
    """A task the board reads, a full run (no --limit), real weights; returns the task.

    ``plumbing``: the run must instead be a classification run with ``model.random_weights`` true
    (stored unranked); a real-weights run is refused so that it cannot be shelved out of the ranking.
    """
    task = require(results, "task", str, where)
    if task not in TASKS:
        raise SubmissionRejected(f"{where}: task {short_repr(task)} is not accepted by this board "
                                 f"({' or '.join(TASKS)})")
    limit = require(results, "config", dict, where).get("limit")
    if limit is not None:
        raise SubmissionRejected(f"{where}: the run used --limit {short_repr(limit)}; limited runs are never ranked, "
                                 "evaluate the whole dataset")
    random_weights = require(results, "model", dict, where).get("random_weights")
    if plumbing:
        if task != "classification" or random_weights is not True:
            raise SubmissionRejected(f"{where}: --plumbing is only for classification runs with "
                                     f"model.random_weights true (this is a {task} run, random_weights "
                                     f"{short_repr(random_weights)}); submit a real run without --plumbing")
    elif random_weights is not False:
        raise SubmissionRejected(f"{where}: model.random_weights must be false; random-weights runs are plumbing "
                                 "tests, not submissions (add one as an unranked plumbing entry with --plumbing)")
    return task


def _check_identity(results: dict[str, Any], board: Board, where: Path) -> None:
    """Same dataset (id, split, revision, fingerprint, samples, classes) as the board."""
    dataset = require(results, "dataset", dict, where)
    expected = board.config.dataset
    for field in DATASET_IDENTITY:
        if dataset.get(field) != expected[field]:
            raise SubmissionRejected(f"{where}: dataset.{field} is {short_repr(dataset.get(field))} "
                                     "but this board is for "
                                     f"{expected[field]!r}; evaluate on the board's dataset revision")
    if dataset.get("class_names") != expected["class_names"]:
        raise SubmissionRejected(f"{where}: dataset.class_names differ from the board's {expected['num_classes']} "
                                 "classes (names or order)")


def _entry_key(results: dict[str, Any], metadata: Metadata, where: Path, task: str, judge: str | None) -> EntryKey:
    revision = results["model"].get("revision") or "unversioned"
    prompts = "captions" if task == "retrieval" else require(results, "prompts.set", str, where)
    return EntryKey(
        task=task,
        judge=judge,
        model=metadata.model_name,
        revision=clean_text(revision, "model.revision", str(where), name=True),
        precision=clean_text(require(results, "config.precision", str, where), "config.precision", str(where),
                             name=True),
        prompt_set=clean_text(prompts, "prompts.set", str(where), name=True),
    )


def _not_ranked_reason(metadata: Metadata, plumbing: bool) -> str | None:
    if plumbing:
        return PLUMBING_REASON
    if metadata.includes_let_it_wag_images:
        return "its pretraining data includes Let it Wag! source images (not zero-shot)"
    return None


def validate_submission(folder: str | Path, board: Board, *, new_entry: bool = True,
                        plumbing: bool = False) -> ValidatedSubmission:
    """Run every check; return the validated submission or raise ``SubmissionRejected`` (one line).

    ``new_entry=False`` re-checks an entry already on the board (no duplicate check against itself).
    ``plumbing=True`` accepts only a random-weights classification run, as an unranked plumbing entry;
    every other check (identity, sanitising, every metric recomputed) is the same.
    """
    config = board.require_config()
    folder = Path(folder)
    check_files(folder, config.limits)
    content = {name: (folder / name).read_bytes() for name in REQUIRED_FILES}
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in content.items()}

    results_path, metadata_path = folder / RESULTS_FILE, folder / METADATA_FILE
    metadata = parse_metadata(read_json(content[METADATA_FILE], metadata_path), str(metadata_path))
    results = read_json(content[RESULTS_FILE], results_path)
    check_results_format(results, results_path)
    task = _check_run(results, results_path, plumbing)
    judge = None
    if task == "t2i":
        check_t2i_identity(results, config.dataset, results_path)
        judge = judge_label(results, results_path)
    elif task == "retrieval":  # its own dataset (COCO, Flickr, ...), not the board's
        clean_text(require(results, "dataset.id", str, results_path), "dataset.id", str(results_path))
    else:
        _check_identity(results, board, results_path)
    clean_text(require(results, "model.spec", str, results_path), "model.spec", str(results_path))
    key = _entry_key(results, metadata, results_path, task, judge)
    claimed = require(results, "metrics", dict, results_path)

    class_names = config.dataset["class_names"]
    if task == "retrieval":
        check_retrieval_predictions(content[PREDICTIONS_FILE], folder / PREDICTIONS_FILE, results)
        recomputed = recompute_retrieval(folder / PREDICTIONS_FILE, claimed,
                                         max_bootstrap_samples=config.max_bootstrap_samples, where=results_path)
    elif task == "t2i":
        counts = frequency_counts_for(claimed.get("by_frequency_bin"), results_path)
        images = check_t2i_predictions(content[PREDICTIONS_FILE], folder / PREDICTIONS_FILE, results, class_names)
        samples, seed = bootstrap_settings(claimed, config.max_bootstrap_samples, "results.json")
        recomputed = recompute_t2i(images, class_names, samples=samples, seed=seed, frequency_counts=counts)
    else:
        counts = frequency_counts_for(claimed.get("by_frequency_bin"), results_path)
        predictions = check_predictions(content[PREDICTIONS_FILE], folder / PREDICTIONS_FILE, board.labels,
                                        config.dataset["num_classes"])
        class_concepts = class_concepts_for(results, class_names, config.dataset["id"], results_path)
        recomputed = recompute_classification(predictions.labels, predictions.topk_ids, class_names,
                                              claimed, max_bootstrap_samples=config.max_bootstrap_samples,
                                              frequency_counts=counts, class_concepts=class_concepts)
    compare_metrics(claimed, recomputed, config.tolerance, str(results_path))

    if new_entry and key.normalised() in board.keys():
        raise SubmissionRejected(f"duplicate submission: {key.describe()} is already on the board")
    return ValidatedSubmission(folder=folder, results=results, metadata=metadata, key=key, file_hashes=hashes,
                               not_ranked_reason=_not_ranked_reason(metadata, plumbing), plumbing=plumbing)


def add_submission(folder: str | Path, board: Board, *, plumbing: bool = False) -> tuple[ValidatedSubmission, Path]:
    """Validate, then store under ``submissions/<model>/<revision>/<precision>_<prompts>/`` atomically."""
    validated = validate_submission(folder, board, plumbing=plumbing)
    validated.ensure_storable()
    stored = store_entry(board, validated.folder, validated.key, validated.file_hashes, validated.record())
    return validated, stored


def verify_board(board: Board) -> list[tuple[Path, str | None]]:
    """Re-run every check on every stored entry, and compare its files with the recorded hashes.

    Why: the board is a repository anyone can clone; this is how anyone confirms that every
    number on it still follows from the stored predictions. Returns (entry folder, problem or None).
    """
    from letitwag.leaderboard.board import read_entry

    outcomes: list[tuple[Path, str | None]] = []
    for folder in board.entry_folders():
        try:
            record = read_entry(folder)["verification"]
            validated = validate_submission(folder, board, new_entry=False, plumbing=record.get("plumbing") is True)
            if record.get("sha256") != validated.file_hashes:
                raise SubmissionRejected(f"{folder}: files differ from the ones verified on "
                                         f"{record.get('verified_at')}")
            if record.get("key") != validated.key.to_json():
                raise SubmissionRejected(f"{folder}: stored key {short_repr(record.get('key'))} differs from "
                                         "the files'")
        except UserInputError as error:
            outcomes.append((folder, str(error)))
        else:
            outcomes.append((folder, None))
    return outcomes
