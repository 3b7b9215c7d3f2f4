"""Step 7: a person looks at each concept's grid and rejects images; decisions live in a file.

Why a file: review is slow, human work. Decisions are saved (atomically) on every "Save",
read back on every rerun, and their hash is part of the step's fingerprint, so an edited
decisions file re-runs review and balancing only. The page is served on 127.0.0.1 only,
images are addressed by position (never by a path from the request), and every string shown
is HTML-escaped.

Decisions file (``letitwag.review/1``)::

    {"format": "letitwag.review/1", "rejected": {"<candidate_id>": "rejected in review"}}
"""

from __future__ import annotations

import html
import json
import logging
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pandas as pd

from letitwag.builders.curate.steps import StepOutcome
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json

LOGGER = logging.getLogger(__name__)
REVIEW_FORMAT = "letitwag.review/1"
MAX_FORM_BYTES = 8 << 20


def read_decisions(path: Path) -> dict[str, str]:
    """candidate id -> note, from a decisions file (empty when the file does not exist yet)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserInputError(f"{path}: not a readable review decisions file ({error}); fix or delete it") from None
    if not isinstance(data, dict) or data.get("format", REVIEW_FORMAT) != REVIEW_FORMAT \
            or not isinstance(data.get("rejected", {}), dict):
        raise UserInputError(f"{path}: expected {{'format': '{REVIEW_FORMAT}', 'rejected': {{id: note}}}}")
    return {str(k): str(v) for k, v in data.get("rejected", {}).items()}


def write_decisions(path: Path, rejected: dict[str, str]) -> None:
    atomic_write_json(path, {"format": REVIEW_FORMAT, "rejected": dict(sorted(rejected.items()))})


def apply_review(frame: pd.DataFrame, path: Path) -> StepOutcome:
    """Reject the rows of ``frame`` a person rejected in ``path``."""
    decisions = read_decisions(path)
    outcome = StepOutcome()
    for row, candidate_id in zip(frame.index, frame["candidate_id"]):
        if candidate_id in decisions:
            outcome.reject(row, f"rejected in human review: {decisions[candidate_id]}")
    return outcome


class ReviewServer:
    """The review page over ``frame``'s images (paths relative to ``out_dir``) on 127.0.0.1."""

    def __init__(self, frame: pd.DataFrame, out_dir: Path, decisions_path: Path, port: int = 0) -> None:
        ordered = frame.sort_values(["label", "candidate_id"], kind="stable")
        self.items = list(zip(ordered["concept_id"], ordered["candidate_id"], ordered["image_path"]))
        self.out_dir = out_dir
        self.decisions_path = decisions_path
        self.finished = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.port = self.httpd.server_address[1]

    def page(self) -> str:
        decisions = read_decisions(self.decisions_path)
        escape = html.escape
        parts = ["<!doctype html><html><head><meta charset='utf-8'><title>letitwag review</title><style>"
                 "body{font-family:sans-serif}figure{display:inline-block;width:170px;margin:3px;font-size:11px}"
                 "img{width:160px;height:120px;object-fit:cover}</style></head><body><h1>Review</h1>"
                 "<p>Tick the images that do not show the concept, then Save (or Save and finish).</p>"
                 "<form method='post' action='/save'>"]
        concept = None
        for index, (concept_id, candidate_id, _) in enumerate(self.items):
            if concept_id != concept:
                parts.append(f"<h2>{escape(str(concept_id))}</h2>")
                concept = concept_id
            checked = " checked" if candidate_id in decisions else ""
            parts.append(f"<figure><img src='/image/{index}' alt=''><figcaption><label><input type='checkbox' "
                         f"name='reject' value='{escape(str(candidate_id), quote=True)}'{checked}> reject "
                         f"{escape(str(candidate_id))}</label></figcaption></figure>")
        parts.append("<p><button type='submit'>Save</button> <button type='submit' formaction='/finish'>"
                     "Save and finish</button></p></form></body></html>")
        return "\n".join(parts)

    def save(self, rejected_ids: list[str]) -> None:
        known = {candidate_id for _, candidate_id, _ in self.items}
        previous = read_decisions(self.decisions_path)
        kept_elsewhere = {k: v for k, v in previous.items() if k not in known}
        chosen = {candidate_id: previous.get(candidate_id, "rejected in review")
                  for candidate_id in rejected_ids if candidate_id in known}
        write_decisions(self.decisions_path, {**kept_elsewhere, **chosen})

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # route the access log to logging
                LOGGER.debug("review: " + fmt, *args)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 - http.server's naming
                if self.path == "/":
                    self._send(HTTPStatus.OK, server.page().encode("utf-8"), "text/html; charset=utf-8")
                    return
                if self.path.startswith("/image/") and self.path[7:].isdigit() and int(self.path[7:]) < len(server.items):
                    path = server.out_dir / server.items[int(self.path[7:])][2]
                    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                    try:
                        self._send(HTTPStatus.OK, path.read_bytes(), kind)
                    except OSError:
                        self._send(HTTPStatus.NOT_FOUND, b"image file missing", "text/plain")
                    return
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                if self.path not in ("/save", "/finish") or length > MAX_FORM_BYTES:
                    self._send(HTTPStatus.BAD_REQUEST, b"unknown action or form too large", "text/plain")
                    return
                form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
                server.save(form.get("reject", []))
                if self.path == "/finish":
                    self._send(HTTPStatus.OK, b"Saved. Curation continues; you can close this page.", "text/plain")
                    server.finished.set()
                    return
                self.send_response(HTTPStatus.SEE_OTHER)
                self.send_header("Location", "/")
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve_review(frame: pd.DataFrame, out_dir: Path, decisions_path: Path, port: int) -> None:
    """Serve the review page until the person presses "Save and finish" (or Ctrl-C)."""
    server = ReviewServer(frame, out_dir, decisions_path, port)
    server.start()
    LOGGER.warning("review page: http://127.0.0.1:%d/ (press 'Save and finish' when done)", server.port)
    try:
        server.finished.wait()
    finally:
        server.stop()
