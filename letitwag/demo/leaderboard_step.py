"""Demo step 5: the leaderboard with the paper's 40 models, and what it does with the demo run.

The demo run is offered to the board's real gate (``leaderboard.validate``) against a board made
for the mini dataset. The gate refuses random-weight runs ("plumbing tests, not submissions"),
so the site shows the paper's 40 reported models and the demo prints the refusal verbatim. If
the gate ever accepts such a run, it is added and the site is built from that board instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from letitwag.io import atomic_write_json

logger = logging.getLogger(__name__)

DEMO_SUBMISSION = {
    "format": "letitwag.submission/1",
    "model_name": "letitwag demo tiny random-weight CLIP (plumbing)",
    "link": "https://arxiv.org/abs/2404.04125",
    "parameters": None,
    "pretraining_data": "none: random initialisation (plumbing model)",
    "includes_let_it_wag_images": False,
    "license": "MIT",
}


@dataclass(frozen=True)
class LeaderboardOutcome:
    site_index: Path
    board: Path
    demo_run_on_site: bool
    refusal: str | None
    entries: int


def leaderboard_with_demo_run(out: Path, run_dir: Path) -> LeaderboardOutcome:
    """Make a board for the mini dataset, offer it the demo run, build the site into ``out/site``."""
    from letitwag.leaderboard.board import Board, init_from_reference
    from letitwag.leaderboard.entries import load_entries
    from letitwag.leaderboard.site import build_site
    from letitwag.leaderboard.submission import METADATA_FILE, SubmissionRejected
    from letitwag.leaderboard.validate import add_submission

    atomic_write_json(run_dir / METADATA_FILE, DEMO_SUBMISSION)
    board = init_from_reference(out / "board", run_dir, title="letitwag demo board (mini dataset)")
    try:
        add_submission(run_dir, board)
    except SubmissionRejected as refusal:
        logger.info("the leaderboard refused the demo run: %s", refusal)
        shown = Board.paper_only()
        site = build_site(shown, out / "site")
        return LeaderboardOutcome(site / "index.html", out / "board", False, str(refusal), len(load_entries(shown)))
    site = build_site(board, out / "site")
    return LeaderboardOutcome(site / "index.html", out / "board", True, None, len(load_entries(board)))
