"""What a submission is, and reading it without trusting it.

A submission is a folder with the harness output (``results.json`` + ``predictions.parquet``,
docs/FORMATS.md) and ``submission.json``, the facts only the submitter knows (model name, link,
parameter count, pretraining data, whether that data includes any Let it Wag! source image —
the zero-shot disclosure MTEB asks for — and license).

Why so strict: everything here ends up in a public web page and in a path on disk. Every file is
size-checked before it is read, JSON may not carry NaN/Infinity, and every string shown to people
is checked for markup, control characters and path separators. Each problem is one line naming
the file and field (``SubmissionRejected``), which the CLI prints as-is.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from letitwag.errors import UserInputError

SUBMISSION_FORMAT = "letitwag.submission/1"
RESULTS_FORMAT_PREFIX = "letitwag.results/"
RESULTS_MAJOR = 1

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.parquet"
METADATA_FILE = "submission.json"
REQUIRED_FILES = (RESULTS_FILE, PREDICTIONS_FILE, METADATA_FILE)

MAX_NAME_CHARS = 100
MAX_TEXT_CHARS = 200
MAX_LINK_CHARS = 300

# Characters that could open markup, a script, an attribute, or a path.
_FORBIDDEN_IN_TEXT = set('<>"`\\')
_FORBIDDEN_IN_NAME = _FORBIDDEN_IN_TEXT | {"/"}
_SLUG_UNSAFE = re.compile(r"[^a-z0-9._+-]+")


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters, so a hostile value cannot flood a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SubmissionRejected(UserInputError):
    """A submission that cannot go on the board; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class SizeLimits:
    """Largest accepted file sizes in bytes (checked before a file is opened)."""

    results_json: int = 8 << 20
    metadata_json: int = 64 << 10
    predictions_parquet: int = 64 << 20

    def for_file(self, name: str) -> int:
        return {RESULTS_FILE: self.results_json, METADATA_FILE: self.metadata_json,
                PREDICTIONS_FILE: self.predictions_parquet}[name]


@dataclass(frozen=True)
class Metadata:
    """The submitter's statements, already sanitised."""

    model_name: str
    link: str
    parameters: int | None
    pretraining_data: str
    includes_let_it_wag_images: bool | None
    license: str
    imagenet_top1: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": SUBMISSION_FORMAT, "model_name": self.model_name, "link": self.link,
                "parameters": self.parameters, "pretraining_data": self.pretraining_data,
                "includes_let_it_wag_images": self.includes_let_it_wag_images, "license": self.license,
                "imagenet_top1": self.imagenet_top1}


def check_files(folder: Path, limits: SizeLimits) -> None:
    """The three files exist, are plain files (no symlinks that could point anywhere) and fit the limits."""
    if not folder.is_dir():
        raise SubmissionRejected(f"{folder}: not a folder; a submission is a folder with {', '.join(REQUIRED_FILES)}")
    for name in REQUIRED_FILES:
        path = folder / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise SubmissionRejected(f"{path}: must be a plain file, not a link or folder")
        if not path.exists():
            raise SubmissionRejected(f"{path}: missing; a submission needs {', '.join(REQUIRED_FILES)}")
        size = path.stat().st_size
        if size > limits.for_file(name):
            raise SubmissionRejected(f"{path}: {size} bytes is over the {limits.for_file(name)}-byte limit for {name}")


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} overflows to infinity")
    return value


def read_json(data: bytes, where: str | Path) -> dict[str, Any]:
    """Parse a JSON object strictly: NaN, Infinity and overflowing numbers are rejected."""
    try:
        parsed = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise SubmissionRejected(f"{where}: not UTF-8 text") from None
    except (ValueError, RecursionError) as error:  # json.JSONDecodeError is a ValueError
        reason = str(error).splitlines()[0] if str(error) else "nested too deeply"
        raise SubmissionRejected(f"{where}: invalid JSON ({reason}); NaN/Infinity are not allowed") from None
    if not isinstance(parsed, dict):
        raise SubmissionRejected(f"{where}: must hold a JSON object, found {type(parsed).__name__}")
    return parsed


def clean_text(value: Any, field: str, where: str, *, max_chars: int = MAX_TEXT_CHARS, name: bool = False) -> str:
    """A display string with no markup, control characters or (for names) path separators."""
    if not isinstance(value, str):
        raise SubmissionRejected(f"{where}: {field} must be a string, found {type(value).__name__}")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise SubmissionRejected(f"{where}: {field} is empty")
    if len(text) > max_chars:
        raise SubmissionRejected(f"{where}: {field} is {len(text)} characters; the limit is {max_chars}")
    forbidden = _FORBIDDEN_IN_NAME if name else _FORBIDDEN_IN_TEXT
    bad = sorted({c for c in text if c in forbidden or unicodedata.category(c)[0] == "C"})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise SubmissionRejected(f"{where}: {field} contains forbidden character(s) {shown} (no markup, "
                                 f"control characters{' or path separators' if name else ''})")
    if name and (text.startswith(".") or not any(c.isalnum() for c in text)):
        raise SubmissionRejected(f"{where}: {field} {text!r} must contain a letter or digit and not start with '.'")
    return text


def clean_link(value: Any, where: str) -> str:
    """An absolute http(s) URL with a host; anything else (javascript:, data:, relative) is refused."""
    link = clean_text(value, "link", where, max_chars=MAX_LINK_CHARS)
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() or c in "'" for c in link):
        raise SubmissionRejected(f"{where}: link {link!r} must be an http(s) URL with a host, without spaces or quotes")
    return link


def slug(text: str) -> str:
    """A folder name for a model/revision: lower-case, safe characters only, never '.' or '..'."""
    out = _SLUG_UNSAFE.sub("-", text.lower()).strip("-.")[:80]
    return out or "unnamed"


def parse_metadata(data: dict[str, Any], where: str) -> Metadata:
    """Check ``submission.json`` field by field (types, ranges, sanitising)."""
    if data.get("format") != SUBMISSION_FORMAT:
        raise SubmissionRejected(f"{where}: format must be {SUBMISSION_FORMAT!r}, "
                                 f"found {short_repr(data.get('format'))}")
    known = {"format", "model_name", "link", "parameters", "pretraining_data", "includes_let_it_wag_images",
             "license", "imagenet_top1"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SubmissionRejected(f"{where}: unknown field(s) {', '.join(map(short_repr, unknown[:5]))}; "
                                 f"allowed: {', '.join(sorted(known))}")
    for field in ("model_name", "link", "pretraining_data", "includes_let_it_wag_images", "license"):
        if field not in data:
            raise SubmissionRejected(f"{where}: missing field {field!r}")
    parameters = data.get("parameters")
    if parameters is not None and (isinstance(parameters, bool) or not isinstance(parameters, int)
                                   or not 0 < parameters < 10**14):
        raise SubmissionRejected(f"{where}: parameters must be a positive integer or null, "
                                 f"found {short_repr(parameters)}")
    disclosure = data["includes_let_it_wag_images"]
    if disclosure is not None and not isinstance(disclosure, bool):
        raise SubmissionRejected(f"{where}: includes_let_it_wag_images must be true, false or null (unknown)")
    imagenet = data.get("imagenet_top1")
    if imagenet is not None and (isinstance(imagenet, bool) or not isinstance(imagenet, (int, float))
                                 or not 0 <= imagenet <= 100):
        raise SubmissionRejected(f"{where}: imagenet_top1 must be a percentage in [0, 100] or null, "
                                 f"found {short_repr(imagenet)}")
    return Metadata(
        model_name=clean_text(data["model_name"], "model_name", where, max_chars=MAX_NAME_CHARS, name=True),
        link=clean_link(data["link"], where),
        parameters=parameters,
        pretraining_data=clean_text(data["pretraining_data"], "pretraining_data", where),
        includes_let_it_wag_images=disclosure,
        license=clean_text(data["license"], "license", where, max_chars=MAX_NAME_CHARS),
        imagenet_top1=None if imagenet is None else float(imagenet),
    )


def require(data: dict[str, Any], dotted: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``data['a']['b']`` for ``'a.b'``, checked to be of ``kind``; a one-line rejection otherwise."""
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise SubmissionRejected(f"{where}: missing field {dotted!r}")
        value = value[part]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise SubmissionRejected(f"{where}: field {dotted!r} has the wrong type ({type(value).__name__})")
    return value


def check_results_format(results: dict[str, Any], where: str) -> None:
    """``format`` is ``letitwag.results/<major>`` with a major version this board reads."""
    fmt = results.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(RESULTS_FORMAT_PREFIX):
        raise SubmissionRejected(f"{where}: format must be '{RESULTS_FORMAT_PREFIX}{RESULTS_MAJOR}', "
                                 f"found {short_repr(fmt)}")
    major = fmt.removeprefix(RESULTS_FORMAT_PREFIX).split(".")[0]
    if major != str(RESULTS_MAJOR):
        raise SubmissionRejected(f"{where}: results format version {short_repr(fmt)} is not supported; "
                                 "this board reads "
                                 f"{RESULTS_FORMAT_PREFIX}{RESULTS_MAJOR} (update letitwag or rerun the harness)")
