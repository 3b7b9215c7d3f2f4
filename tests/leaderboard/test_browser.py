"""The built site in a real browser (Debian's chromium driven by playwright-core from npm).

Served from a loopback HTTP server this test starts and stops; also opened from ``file://``.
If the browser or the npm package is missing the test FAILS with the commands that install them
(``make test`` provides them): a leaderboard whose pages were never opened in a browser is untested.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from test_site import HOSTILE, plant_hostile_entry
from letitwag.leaderboard.board import Board
from letitwag.leaderboard.site import build_site

BROWSER_DIR = Path(__file__).parent / "browser"
CHROMIUM = os.environ.get("LETITWAG_CHROMIUM", "/usr/bin/chromium")
INSTALL = ("apt-get update && apt-get install -y chromium chromium-driver nodejs npm && "
           f"npm ci --prefix {BROWSER_DIR}")


def _require_browser() -> str:
    node = shutil.which("node")
    missing = [what for what, ok in (("chromium at " + CHROMIUM, Path(CHROMIUM).exists()), ("node", node),
                                     ("playwright-core", (BROWSER_DIR / "node_modules" / "playwright-core").is_dir()))
               if not ok]
    if missing:
        pytest.fail(f"browser test needs {', '.join(missing)}; install with: {INSTALL}", pytrace=False)
    return node


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def served_site(board_dir: Path, submission: Path, tmp_path: Path):
    plant_hostile_entry(board_dir, submission)
    site = build_site(Board.open(board_dir), tmp_path / "site")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_site_in_a_real_browser(served_site) -> None:
    node = _require_browser()
    site, base_url = served_site
    run = subprocess.run([node, str(BROWSER_DIR / "check_site.mjs"), base_url, (site / "index.html").as_uri(), HOSTILE],
                         capture_output=True, text=True, timeout=180, cwd=BROWSER_DIR)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    assert seen["dialogs"] == []  # the <script> name never ran
    assert seen["requestsOutside"] == []
    assert seen["consoleErrors"] == []
    total = len(seen["initialNames"])
    assert total == 41

    # sorting: clicking "Model" orders rows by name; clicking Top-1 twice flips it to ascending
    assert seen["namesAfterModelClick"] != seen["initialNames"]
    assert seen["namesAfterModelClick"] == seen["expectedNameOrder"]
    assert seen["modelSortState"] == "ascending"
    top1 = [float(v) for v in seen["top1AfterTwoClicks"] if v]
    assert top1 == sorted(top1) and seen["top1SortState"] == "ascending"
    assert [float(v) for v in seen["initialTop1"] if v] == sorted(top1, reverse=True)

    # filtering
    assert seen["filteredNames"] and all("siglip" in name.lower() for name in seen["filteredNames"])
    assert seen["shownText"] == f"{len(seen['filteredNames'])} of {total} shown"
    assert seen["unfilteredCount"] == total

    # the hostile name is text, on the board and on its own page
    assert seen["hostileCellTexts"] == [HOSTILE]
    assert seen["scriptTagsInBody"] == 0
    assert seen["hostilePageTitle"] == HOSTILE and "/models/sub-" in seen["hostilePageUrl"]

    # a model page opened by clicking its name
    assert "/models/" in seen["modelPageUrl"] and seen["modelPageConcepts"] == 10
    assert seen["fileShownText"] == f"{total} of {total} shown"  # the script runs from file:// too
