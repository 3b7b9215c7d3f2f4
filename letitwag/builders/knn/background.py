"""Run ``letitwag knn serve`` as a child process on a free loopback port, and always stop it.

Why a real child process (not an in-process app): the demo and the tests exercise the backend
exactly as a user runs it, and clients talk to it over HTTP like to any clip-retrieval backend.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)


def free_loopback_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when its parent dies, even by SIGKILL (no orphan on the port)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def served_index(serve_args: list[str], log_file: str | Path, startup_timeout: float = 240.0) -> Iterator[str]:
    """``letitwag knn serve SERVE_ARGS`` on 127.0.0.1; yields the base URL; stops the server on exit.

    ``serve_args`` are the command's own arguments (``["demo=INDEX", "--workers", "2"]``); host and
    port are chosen here. The server's output goes to ``log_file`` (a pipe nobody reads could fill
    up and block it).
    """
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "letitwag", "knn", "serve", *serve_args, "--host", "127.0.0.1",
               "--port", str(port)]
    with open(log_file, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _healthy(url):
                if process.poll() is not None:
                    raise UserInputError(f"letitwag knn serve exited with code {process.returncode} before it "
                                         f"answered; see {log_file}")
                if time.monotonic() > deadline:
                    raise UserInputError(f"letitwag knn serve did not answer on {url} within {startup_timeout:.0f} s; "
                                         f"see {log_file}")
                time.sleep(0.3)
            logger.info("kNN backend (pid %d) serving %s on %s", process.pid, " ".join(serve_args), url)
            yield url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            logger.info("kNN backend stopped")
