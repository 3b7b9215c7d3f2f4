"""open_clip models: pretrained tags, Hub repos, local checkpoints, or random weights."""

from __future__ import annotations

import logging
from pathlib import Path

from letitwag.errors import UserInputError
from letitwag.models.base import Encoder
from letitwag.models.provenance import file_identity, plumbing_card
from letitwag.models.spec import ModelSpec, looks_like_path

logger = logging.getLogger(__name__)


def _open_clip_precision(precision: str) -> str:
    """open_clip's name for our precision (``amp`` keeps fp32 weights and autocasts)."""
    return {"fp32": "fp32", "amp": "fp32", "bf16": "pure_bf16", "fp16": "pure_fp16"}[precision]


def _resolved_weights(spec: ModelSpec) -> dict:
    import open_clip

    if spec.pretrained is None:
        if spec.name.startswith("local-dir:"):
            return file_identity(spec.name[len("local-dir:"):])
        if spec.name.startswith("hf-hub:"):
            return {"resolved_checkpoint": spec.name, "revision": None}
        return {"resolved_checkpoint": None, "revision": None}
    if looks_like_path(spec.pretrained):
        return file_identity(spec.pretrained)
    try:
        cached = open_clip.download_pretrained(open_clip.get_pretrained_cfg(spec.name, spec.pretrained))
    except Exception as error:  # noqa: BLE001 - provenance only; loading already succeeded
        logger.debug("could not resolve cached file of %s: %s", spec.raw, error)
        return {"resolved_checkpoint": spec.pretrained, "revision": None}
    return file_identity(cached) if cached else {"resolved_checkpoint": spec.pretrained, "revision": None}


class OpenClipEncoder(Encoder):
    adapter = "open_clip"

    def __init__(self, spec: ModelSpec, device: str = "cpu", precision: str = "fp32"):
        import open_clip

        self._bind(spec, device, precision)
        if spec.options.get("config_dir"):
            open_clip.add_model_config(spec.options["config_dir"])
        pretrained = spec.pretrained
        if pretrained and looks_like_path(pretrained):
            pretrained = str(Path(pretrained).expanduser())
            if not Path(pretrained).is_file():
                raise UserInputError(f"model spec {spec.raw!r}: checkpoint {pretrained} does not exist")
        self.init_seed = None
        if pretrained is None and not spec.name.startswith(("hf-hub:", "local-dir:")):
            import torch

            # Random weights come from torch's global generator: recording its seed makes them
            # reproducible (and cacheable) when the caller seeds right before loading, as the harness does.
            self.init_seed = torch.initial_seed()
            logger.warning("%s: no pretrained weights given, using RANDOM weights (plumbing test only)", spec.raw)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.name,
                pretrained=pretrained,
                device=device,
                precision=_open_clip_precision(self.precision),
                weights_only=True,
            )
        except RuntimeError as error:
            if "Failed to download" in str(error):
                raise UserInputError(
                    f"model spec {spec.raw!r}: cannot download the weights ({str(error).splitlines()[0][:300]}); "
                    "check the network or give a local checkpoint (open_clip:ARCH/PATH)"
                ) from None
            if "state_dict" in str(error) or "size mismatch" in str(error):
                first = str(error).strip().splitlines()[0]
                raise UserInputError(
                    f"model spec {spec.raw!r}: checkpoint {pretrained} does not match architecture {spec.name} "
                    f"({first}); use the architecture the checkpoint was trained with"
                ) from None
            raise
        except (FileNotFoundError, ValueError) as error:
            raise UserInputError(f"model spec {spec.raw!r}: {error}".splitlines()[0]) from None
        self.model = model.eval()
        self._image_tower = self._eager_image_tower()
        self._text_tower = self._eager_text_tower()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(spec.name)
        self.logit_scale = float(model.logit_scale.exp().item())
        self._weights = _resolved_weights(spec)

    def _eager_image_tower(self):
        """The fused, class-token-last-block tower (``open_clip_cls_tower``) for an fp32 CLIP ViT, else
        ``encode_image`` itself. fp32 only: its check against the full forward needs
        fp32's rounding to tell a real difference from reordered arithmetic."""
        from letitwag.models.open_clip_cls_tower import ClassTokenTower, supports_class_token_tower

        if self.precision == "fp32" and supports_class_token_tower(self.model):
            return ClassTokenTower(self.model.visual)
        return self.model.encode_image

    def _eager_text_tower(self):
        """The tower that stops at the batch's last end-of-text token (``open_clip_text_tower``) for an
        fp32 CLIP, else ``encode_text`` itself (fp32 only, for the same reason as the image tower)."""
        from letitwag.models.open_clip_text_tower import TrimmedTextTower, supports_trimmed_text

        if self.precision == "fp32" and supports_trimmed_text(self.model):
            return TrimmedTextTower(self.model)
        return self.model.encode_text

    def compile_images(self) -> None:
        """Compile the image tower with inductor (weights frozen into the graph) for faster forwards.

        Why freezing: with the weights constant, inductor pre-packs them for oneDNN / fuses the
        bias and activation epilogues, which is where the CPU speed-up over eager comes from.
        The graph is compiled for one batch shape; smaller (last) batches are zero-padded to it,
        so a run compiles once instead of once per distinct batch size.
        """
        import torch

        self._compiled_visual = torch.compile(self.model.visual, dynamic=False, options={"freezing": True})
        self._compiled_batch = None
        logger.info("%s: image tower will be compiled on its first batch (takes a while on CPU)", self.spec)

    def _encode_images(self, pixel_batch):
        compiled = getattr(self, "_compiled_visual", None)
        if compiled is None:
            return self._image_tower(pixel_batch)
        rows = pixel_batch.shape[0]
        if self._compiled_batch is None or rows > self._compiled_batch:
            self._compiled_batch = rows
        if rows < self._compiled_batch:
            import torch

            padding = pixel_batch.new_zeros((self._compiled_batch - rows, *pixel_batch.shape[1:]))
            return compiled(torch.cat((pixel_batch, padding)))[:rows]
        return compiled(pixel_batch)

    def _encode_texts(self, texts):
        return self._text_tower(self.tokenizer(texts).to(self.device))

    def metadata(self) -> dict:
        import open_clip

        checkpoint = self._weights.get("resolved_checkpoint")
        card = plumbing_card(Path(checkpoint).parent) if checkpoint and Path(checkpoint).is_file() else {}
        if checkpoint and Path(checkpoint).is_dir():
            card = plumbing_card(checkpoint)
        random = (self.parsed.pretrained is None and not self.parsed.name.startswith(("hf-hub:", "local-dir:")))
        return {
            "spec": self.spec,
            "adapter": self.adapter,
            "name": self.parsed.name,
            "pretrained": self.parsed.pretrained,
            **self._weights,
            "random_weights": bool(random or card.get("random_weights", False)),
            "plumbing_model": bool(card.get("plumbing_model", False)),
            "init_seed": self.init_seed,
            "library_version": open_clip.__version__,
        }
