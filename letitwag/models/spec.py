"""Parse a ``--model`` spec string into its parts, with close-match hints for typos.

Why a separate parser: every stage (tagging, kNN, curation, evaluation) accepts the same spec,
so a typo must fail the same way everywhere, before any weights are loaded.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from letitwag.errors import UserInputError

ADAPTERS: dict[str, str] = {
    "open_clip": "open_clip:ARCH/PRETRAINED_TAG | open_clip:ARCH/PATH_TO_CHECKPOINT | "
    "open_clip:hf-hub:ORG/NAME | open_clip:local-dir:DIR | open_clip:ARCH (random weights)",
    "transformers": "transformers:ORG/NAME[@REVISION] | transformers:LOCAL_DIR (CLIP and SigLIP families)",
    "diffusers": "diffusers:ORG/NAME[@REVISION] | diffusers:LOCAL_PIPELINE_DIR (text-to-image)",
    "python": "python:package.module:factory (an object with encode_image/encode_text or generate)",
}

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".npz")


@dataclass(frozen=True)
class ModelSpec:
    """One parsed spec. ``pretrained`` is a tag, a checkpoint path, or None (random weights)."""

    raw: str
    adapter: str
    name: str
    pretrained: str | None = None
    options: dict = field(default_factory=dict, compare=False, hash=False)


def close_matches(word: str, choices, n: int = 5) -> str:
    """A 'did you mean' suffix for error messages (empty when nothing is close)."""
    matches = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)
    return f"; did you mean: {', '.join(matches)}?" if matches else ""


def looks_like_path(text: str) -> bool:
    """True for strings that name a file or folder rather than a hub id or pretrained tag."""
    return (
        text.startswith(("/", "./", "../", "~"))
        or text.lower().endswith(CHECKPOINT_SUFFIXES)
        or Path(text).expanduser().exists()
    )


def _split_revision(identifier: str) -> tuple[str, dict]:
    if "@" in identifier and not looks_like_path(identifier):
        name, revision = identifier.rsplit("@", 1)
        return name, {"revision": revision}
    return identifier, {}


def _parse_open_clip(raw: str, rest: str) -> ModelSpec:
    if rest.startswith(("hf-hub:", "local-dir:")):
        return ModelSpec(raw, "open_clip", rest, None)
    arch, _, pretrained = rest.partition("/")
    pretrained = pretrained or None
    import open_clip

    known = open_clip.list_models()
    custom_config = None
    if arch not in known and pretrained and looks_like_path(pretrained):
        # A custom architecture ships its JSON config beside the checkpoint (see models/tiny.py).
        candidate = Path(pretrained).expanduser().parent / f"{arch}.json"
        if candidate.is_file():
            custom_config = str(candidate.parent)
    if arch not in known and custom_config is None:
        raise UserInputError(
            f"model spec {raw!r}: unknown open_clip architecture {arch!r}{close_matches(arch, known)} "
            "(see `letitwag evaluate --list-models`; a custom architecture needs ARCH.json beside its checkpoint)"
        )
    if pretrained and not looks_like_path(pretrained):
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if pretrained not in tags:
            hint = close_matches(pretrained, tags) or (f"; known tags: {', '.join(tags)}" if tags else "")
            raise UserInputError(
                f"model spec {raw!r}: no pretrained tag {pretrained!r} for {arch}{hint} (or give a checkpoint path)"
            )
    options = {"config_dir": custom_config} if custom_config else {}
    return ModelSpec(raw, "open_clip", arch, pretrained, options)


def _parse_python(raw: str, rest: str) -> ModelSpec:
    module, sep, factory = rest.rpartition(":")
    if not sep or not module or not factory:
        raise UserInputError(f"model spec {raw!r}: expected python:package.module:factory")
    return ModelSpec(raw, "python", module, factory)


def parse_spec(spec: str) -> ModelSpec:
    """Split ``ADAPTER:REST`` and check the adapter and (for open_clip) the architecture and tag."""
    adapter, sep, rest = spec.partition(":")
    if not sep or adapter not in ADAPTERS:
        guess = close_matches(adapter if sep else spec, ADAPTERS)
        raise UserInputError(
            f"model spec {spec!r}: unknown adapter {adapter if sep else '(none)'!r}{guess} "
            f"(specs look like {', '.join(a + ':...' for a in ADAPTERS)})"
        )
    if not rest:
        raise UserInputError(f"model spec {spec!r}: nothing after '{adapter}:'; expected {ADAPTERS[adapter]}")
    if adapter == "open_clip":
        return _parse_open_clip(spec, rest)
    if adapter == "python":
        return _parse_python(spec, rest)
    name, options = _split_revision(rest)
    return ModelSpec(spec, adapter, name, None, options)


def pretrained_source(spec: ModelSpec, trust_remote_code: bool) -> tuple[Path | None, str, dict]:
    """Where a ``from_pretrained`` adapter reads: ``(local dir or None, source, keyword arguments)``.

    A local folder is read with ``local_files_only`` so an offline run never reaches for a hub;
    a Hub id keeps its ``@revision``. ``trust_remote_code`` is passed through only as the user set it.
    """
    candidate = Path(spec.name).expanduser()
    local_dir = candidate if candidate.is_dir() else None
    kwargs = {"revision": spec.options.get("revision"), "trust_remote_code": trust_remote_code}
    if local_dir:
        kwargs["local_files_only"] = True
    return local_dir, str(local_dir) if local_dir else spec.name, kwargs
