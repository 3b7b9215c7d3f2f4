"""One ``--model`` spec -> a loaded encoder or generator, shared by the builders and the harness.

Specs:

- ``open_clip:ARCH/PRETRAINED_TAG`` (e.g. ``open_clip:ViT-B-32/laion2b_s34b_b79k``),
  ``open_clip:ARCH/PATH_TO_CHECKPOINT`` (safetensors or a state dict read with
  ``weights_only=True``; a custom ARCH is found as ``ARCH.json`` beside the checkpoint),
  ``open_clip:hf-hub:ORG/NAME``, ``open_clip:local-dir:DIR``, ``open_clip:ARCH`` (random weights);
- ``transformers:ORG/NAME[@REVISION]`` or ``transformers:LOCAL_DIR`` (CLIP, SigLIP);
- ``diffusers:ORG/NAME[@REVISION]`` or ``diffusers:LOCAL_DIR`` (text-to-image pipelines);
- ``python:package.module:factory``.

Usage::

    from letitwag.models import load_encoder
    encoder = load_encoder("open_clip:ViT-B-32/laion2b_s34b_b79k")
    image_vectors = encoder.encode_images(torch.stack([encoder.preprocess(img) for img in images]))
    text_vectors = encoder.encode_texts(["a photo of a dog"])
"""

from __future__ import annotations

from letitwag.errors import UserInputError
from letitwag.models.base import PRECISIONS, Encoder, Generator, ModelOutputError
from letitwag.models.spec import ADAPTERS, ModelSpec, parse_spec

__all__ = [
    "ADAPTERS",
    "PRECISIONS",
    "Encoder",
    "Generator",
    "ModelOutputError",
    "ModelSpec",
    "list_models",
    "load_encoder",
    "load_generator",
    "parse_spec",
]


def load_encoder(spec: str, *, device: str = "cpu", precision: str = "fp32", trust_remote_code: bool = False) -> Encoder:
    """Load a dual image-text encoder; raises ``UserInputError`` for bad specs or checkpoints."""
    parsed = parse_spec(spec)
    if parsed.adapter == "open_clip":
        from letitwag.models.open_clip_adapter import OpenClipEncoder

        return OpenClipEncoder(parsed, device=device, precision=precision)
    if parsed.adapter == "transformers":
        from letitwag.models.transformers_adapter import TransformersEncoder

        return TransformersEncoder(parsed, device=device, precision=precision, trust_remote_code=trust_remote_code)
    if parsed.adapter == "python":
        from letitwag.models.python_adapter import PythonEncoder, build_object

        obj = build_object(parsed, device, precision)
        if not (hasattr(obj, "encode_image") and hasattr(obj, "encode_text")):
            raise UserInputError(f"model spec {spec!r}: the factory's object has no encode_image/encode_text")
        return PythonEncoder(parsed, obj, device=device, precision=precision)
    raise UserInputError(f"model spec {spec!r}: the {parsed.adapter} adapter loads generators, not encoders")


def load_generator(spec: str, *, device: str = "cpu", precision: str = "fp32", trust_remote_code: bool = False) -> Generator:
    """Load a text-to-image generator (``diffusers:`` or ``python:``)."""
    parsed = parse_spec(spec)
    if parsed.adapter == "diffusers":
        from letitwag.models.diffusers_adapter import DiffusersGenerator

        return DiffusersGenerator(parsed, device=device, precision=precision, trust_remote_code=trust_remote_code)
    if parsed.adapter == "python":
        from letitwag.models.python_adapter import PythonGenerator, build_object

        obj = build_object(parsed, device, precision)
        if not hasattr(obj, "generate"):
            raise UserInputError(f"model spec {spec!r}: the factory's object has no generate(prompts, seed=...)")
        return PythonGenerator(parsed, obj, device=device, precision=precision)
    raise UserInputError(f"model spec {spec!r}: the {parsed.adapter} adapter loads encoders, not generators")


def list_models() -> dict:
    """Known adapters (with their spec forms) and every open_clip ``ARCH/TAG`` pretrained pair."""
    import open_clip

    return {
        "adapters": dict(ADAPTERS),
        "open_clip_pretrained": [f"open_clip:{arch}/{tag}" for arch, tag in open_clip.list_pretrained()],
        "open_clip_architectures": list(open_clip.list_models()),
    }
