"""Fixtures of the leaderboard tests: one synthetic board and one valid submission, private copies per test.

The helpers live in ``board_helpers`` (importable by that unique name even when another test
area's ``conftest`` is loaded in the same session); they are re-exported here for the fault suite,
which loads this file by path.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from board_helpers import (  # noqa: E402,F401  (re-exported for tests/faults)
    BOOTSTRAP, CLASS_NAMES, DATASET, LABELS, NUM_CLASSES, PER_CLASS, bundled_counts, metadata_document, metrics_for,
    predict, results_document, write_predictions, write_submission,
)


@pytest.fixture(scope="session")
def _templates(tmp_path_factory) -> Path:
    """One board and one valid submission per session; tests get private copies."""
    from letitwag.leaderboard.board import init_from_reference

    root = tmp_path_factory.mktemp("templates")
    reference = write_submission(root / "reference", seed=0)
    init_from_reference(root / "board", reference)
    write_submission(root / "submission", seed=1)
    return root


@pytest.fixture
def board_dir(_templates: Path, tmp_path: Path) -> Path:
    """A board created from a reference run on the synthetic dataset."""
    return Path(shutil.copytree(_templates / "board", tmp_path / "board"))


@pytest.fixture
def submission(_templates: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(_templates / "submission", tmp_path / "submission"))
