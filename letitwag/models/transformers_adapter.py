"""Hugging Face transformers dual encoders (CLIP and SigLIP families) from the Hub or a local dir."""

from __future__ import annotations

import logging

from letitwag.errors import UserInputError
from letitwag.models.base import Encoder, weight_dtype
from letitwag.models.provenance import file_identity, plumbing_card
from letitwag.models.spec import ModelSpec, pretrained_source

logger = logging.getLogger(__name__)

# SigLIP was trained on texts padded to the full length; CLIP pads to the longest text.
_PAD_TO_MAX_LENGTH = ("siglip", "siglip2")


class ImageProcessorTransform:
    """PIL image -> CHW tensor via a transformers image processor (picklable for DataLoader workers)."""

    def __init__(self, image_processor):
        self.image_processor = image_processor

    def __call__(self, image):
        return self.image_processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]


def _features(output):
    """transformers 4 returns a tensor, 5 a model output whose ``pooler_output`` is projected."""
    import torch

    return output if isinstance(output, torch.Tensor) else output.pooler_output


class TransformersEncoder(Encoder):
    adapter = "transformers"

    def __init__(self, spec: ModelSpec, device: str = "cpu", precision: str = "fp32", trust_remote_code: bool = False):
        from transformers import AutoModel, AutoProcessor

        self._bind(spec, device, precision)
        self.local_dir, source, kwargs = pretrained_source(spec, trust_remote_code)
        try:
            model, loading = AutoModel.from_pretrained(
                source, dtype=weight_dtype(self.precision), output_loading_info=True, **kwargs
            )
            processor = AutoProcessor.from_pretrained(source, **kwargs)
        except RuntimeError as error:
            if "mismatch" not in str(error).lower():
                raise
            raise UserInputError(
                f"model spec {spec.raw!r}: the weights do not match the architecture in its config "
                "(size mismatch); use the config the checkpoint was saved with"
            ) from None
        except (OSError, ValueError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            hint = "" if trust_remote_code else " (custom code needs --trust-remote-code)"
            raise UserInputError(f"model spec {spec.raw!r}: cannot load with transformers: {message}{hint}") from None
        missing = list(loading.get("missing_keys") or [])
        if missing:
            raise UserInputError(
                f"model spec {spec.raw!r}: the checkpoint lacks {len(missing)} weights of {type(model).__name__} "
                f"(e.g. {sorted(missing)[0]}); they would be random: wrong checkpoint for this architecture"
            )
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise UserInputError(
                f"model spec {spec.raw!r}: {type(model).__name__} is not a dual image-text encoder "
                "(need get_image_features/get_text_features, e.g. CLIP or SigLIP)"
            )
        self.model = model.to(device).eval()
        self.tokenizer = processor.tokenizer
        self.preprocess = ImageProcessorTransform(processor.image_processor)
        self.model_type = getattr(model.config, "model_type", "")
        scale = getattr(model, "logit_scale", None)
        self.logit_scale = float(scale.exp().item()) if scale is not None else 100.0
        self.max_length = getattr(getattr(model.config, "text_config", model.config), "max_position_embeddings", 77)

    def _encode_images(self, pixel_batch):
        return _features(self.model.get_image_features(pixel_values=pixel_batch))

    def _encode_texts(self, texts):
        padding = "max_length" if self.model_type in _PAD_TO_MAX_LENGTH else True
        tokens = self.tokenizer(
            texts, padding=padding, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        return _features(self.model.get_text_features(**tokens))

    def metadata(self) -> dict:
        import transformers

        if self.local_dir:
            weights = file_identity(self.local_dir)
            card = plumbing_card(self.local_dir)
        else:
            weights = {"resolved_checkpoint": self.parsed.name,
                       "revision": getattr(self.model.config, "_commit_hash", None) or self.parsed.options.get("revision")}
            card = {}
        return {
            "spec": self.spec,
            "adapter": self.adapter,
            "name": self.parsed.name,
            "pretrained": None,
            "model_type": self.model_type,
            **weights,
            "random_weights": bool(card.get("random_weights", False)),
            "plumbing_model": bool(card.get("plumbing_model", False)),
            "library_version": transformers.__version__,
        }
