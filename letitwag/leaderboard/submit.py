"""``submit``: open a pull request with a validated submission on the board's Hugging Face repo.

Why a pull request (as MTEB does): the board repo stays the single source of truth, reviewers
see exactly which files arrive, and the maintainers' CI re-runs ``validate`` before merging.
The files go to ``submissions/<model>/<revision>/<precision>_<prompt set>/`` — the layout
``add`` uses — so a merged PR is already a board entry minus its verification record.
Only the bytes that passed validation are uploaded (re-hashed just before upload).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from pathlib import PurePosixPath
from typing import Any

from letitwag.errors import UserInputError
from letitwag.leaderboard.board import SUBMISSIONS_DIR
from letitwag.leaderboard.submission import REQUIRED_FILES, SubmissionRejected
from letitwag.leaderboard.validate import ValidatedSubmission

logger = logging.getLogger(__name__)


class SubmitError(UserInputError):
    """The Hub could not be reached or refused the pull request; nothing was submitted."""


def plan_operations(validated: ValidatedSubmission) -> list[Any]:
    """The ``CommitOperationAdd`` list for the pull request (no network)."""
    from huggingface_hub import CommitOperationAdd

    validated.ensure_storable()
    folder = PurePosixPath(SUBMISSIONS_DIR, *validated.key.folder().parts)
    operations = []
    for name in REQUIRED_FILES:
        data = (validated.folder / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != validated.file_hashes[name]:
            raise SubmissionRejected(f"{validated.folder / name}: changed after validation; validate and submit again")
        operations.append(CommitOperationAdd(path_in_repo=str(folder / name), path_or_fileobj=data))
    return operations


def describe(validated: ValidatedSubmission) -> tuple[str, str]:
    """Pull request title and description."""
    key, metrics = validated.key, validated.results["metrics"]
    title = f"Add {key.describe()}"
    if key.task == "t2i":
        lines = [f"judge: {key.judge}", f"judge top-1: {metrics['judge_top1']:.4f}",
                 f"expected CLIPScore: {metrics['expected_clip_score']:.4f}",
                 f"max CLIPScore: {metrics['max_clip_score']:.4f}", f"retrieval CMC@1: {metrics.get('retrieval_cmc@1')}"]
    else:
        lines = [f"top-1: {metrics['top1']:.4f}", f"top-5: {metrics.get('top5')}",
                 f"mean per-class recall: {metrics.get('mean_per_class_recall')}"]
    lines.append(f"includes Let it Wag! source images: {validated.metadata.includes_let_it_wag_images}")
    body = ("Submission made with `letitwag leaderboard submit`; validated locally (every metric recomputed).\n\n"
            + "".join(f"- {line}\n" for line in lines))
    return title, body


def _network_errors() -> tuple[type[BaseException], ...]:
    """What a failed Hub call raises: its HTTP/offline errors, OS errors, and the HTTP client's errors.

    huggingface_hub switched HTTP clients across releases (requests, httpx, httpx2); we catch the
    base error of whichever is installed rather than pin one.
    """
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    errors: list[type[BaseException]] = [HfHubHTTPError, OfflineModeIsEnabled, OSError]
    for client in ("httpx2", "httpx", "requests"):
        try:
            module = importlib.import_module(client)
        except ImportError:
            continue
        errors.append(getattr(module, "HTTPError", None) or module.RequestException)
    return tuple(errors)


def open_pull_request(validated: ValidatedSubmission, repo_id: str, *, token: str | None = None,
                      endpoint: str | None = None) -> str:
    """Create the PR on the dataset repo ``repo_id``; returns its URL. Network errors become ``SubmitError``."""
    from huggingface_hub import HfApi

    operations = plan_operations(validated)
    title, body = describe(validated)
    api = HfApi(endpoint=endpoint, token=token)
    logger.info("opening a pull request on %s with %d files", repo_id, len(operations))
    try:
        info = api.create_commit(repo_id=repo_id, repo_type="dataset", operations=operations,
                                 commit_message=title, commit_description=body, create_pr=True)
    except _network_errors() as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SubmitError(f"could not open a pull request on dataset {repo_id}: {reason}; nothing was submitted "
                          "(check the network, the repo name and `hf auth login`)") from None
    return str(info.pr_url or info.commit_url)
