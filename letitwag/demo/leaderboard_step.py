"""Demo step 5: the leaderboard with the paper's 40 models plus the demo run, as a plumbing entry.

The demo run goes through the board's real gate (``leaderboard.validate``) against a board made
for the mini dataset: identity, sanitising, and every metric recomputed from its predictions.
Its model has random weights, so it is added with ``plumbing=True``: stored as an unranked
"plumbing run (random weights)" that the site lists in its own section, apart from the ranked
table (the paper's 40 reported models, which the board includes) and the scatter. Without that
flag the gate refuses random-weight runs, as it does for every real submission.
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
    entries: int


def leaderboard_with_demo_run(out: Path, run_dir: Path) -> LeaderboardOutcome:
    """Make a board for the mini dataset, add the demo run as plumbing, build the site into ``out/site``.

    A rejection here is a real failure (the demo's own run no longer passes the gate) and propagates.
    """
    from letitwag.leaderboard.board import init_from_reference
    from letitwag.leaderboard.entries import load_entries
    from letitwag.leaderboard.site import build_site
    from letitwag.leaderboard.submission import METADATA_FILE
    from letitwag.leaderboard.validate import add_submission

    atomic_write_json(run_dir / METADATA_FILE, DEMO_SUBMISSION)
    board = init_from_reference(out / "board", run_dir, title="letitwag demo board (mini dataset)")
    validated, stored = add_submission(run_dir, board, plumbing=True)
    logger.info("added the demo run to %s as an unranked plumbing entry: %s", stored, validated.not_ranked_reason)
    site = build_site(board, out / "site")
    return LeaderboardOutcome(site / "index.html", out / "board", len(load_entries(board)))
