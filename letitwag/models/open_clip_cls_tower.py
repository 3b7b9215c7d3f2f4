"""An open_clip ViT image tower that computes its last block for the class token only.

Why: a ViT that pools its class token (``pool_type='tok'``, every CLIP ViT) reads nothing of
the other tokens' outputs of the last block, yet ``VisionTransformer.forward`` computes them:
their MLP, attention output projection and queries are ~1/13 of ViT-B-32's arithmetic. Here
the last block attends from the class token only (keys and values still come from every
token) and runs the MLP on that one token, so the pooled features are the same up to float
rounding (max |difference| ~1e-6 on ViT-B-32) for ~8% less compute.

It builds on open_clip internals (``VisionTransformer._embeds``, the pre-norm
``ResidualAttentionBlock``), so it is used only where the tower has exactly that shape, and
``ClassTokenTower.verified`` compares it with the full forward on the first images it sees:
a future open_clip that changes the block falls back to the full forward instead of giving
different features.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)

# The check against the full forward: images compared, and the tolerance on unit-scale features.
CHECK_IMAGES = 2
CHECK_TOLERANCE = 1e-4


def supports_class_token_tower(model) -> bool:
    """Whether ``model.encode_image`` is ``model.visual`` and that is an open_clip ViT whose
    output is its class token after a plain pre-norm transformer (no attentional pooler, no
    token output, no cross-attention)."""
    try:
        from open_clip.model import CLIP, CustomTextCLIP
        from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
    except ImportError:
        return False
    if getattr(type(model), "encode_image", None) not in (CLIP.encode_image, CustomTextCLIP.encode_image):
        return False
    visual = getattr(model, "visual", None)
    if not isinstance(visual, VisionTransformer) or not hasattr(visual, "_embeds"):
        return False
    blocks = getattr(visual.transformer, "resblocks", None)
    return (
        getattr(visual, "attn_pool", None) is None
        and getattr(visual, "pool_type", None) == "tok"
        and not getattr(visual, "output_tokens", False)
        and getattr(visual.transformer, "batch_first", False)
        and blocks is not None
        and len(blocks) > 0
        and all(type(block) is ResidualAttentionBlock and not hasattr(block, "ln_1_kv") for block in blocks)
    )


def class_token_features(visual, pixels):
    """``visual(pixels)`` with the last block computed for the class token only."""
    tokens = visual._embeds(pixels)
    *body, last = visual.transformer.resblocks
    for block in body:
        tokens = block(tokens)
    normed = last.ln_1(tokens)
    attended = last.attn(normed[:, :1], normed, normed, need_weights=False)[0]
    cls = tokens[:, :1] + last.ls_1(attended)
    cls = cls + last.ls_2(last.mlp(last.ln_2(cls)))
    pooled = visual.ln_post(cls[:, 0])  # LayerNorm is per token: the same before or after pooling
    return pooled @ visual.proj if visual.proj is not None else pooled


class ClassTokenTower:
    """Callable image tower: the class-token shortcut once it has matched the full forward."""

    def __init__(self, visual) -> None:
        self.visual = visual
        self.verified: bool | None = None  # None: not checked yet
        self._checking = threading.Lock()  # streams call the tower from several threads: check once

    def __call__(self, pixels):
        if self.verified is None:
            with self._checking:
                if self.verified is None:
                    self.verified = self._matches_full_forward(pixels[:CHECK_IMAGES])
        return class_token_features(self.visual, pixels) if self.verified else self.visual(pixels)

    def _matches_full_forward(self, pixels) -> bool:
        full = self.visual(pixels)
        short = class_token_features(self.visual, pixels)
        scale = max(1.0, float(full.abs().max()))
        difference = float((full - short).abs().max()) / scale
        if difference > CHECK_TOLERANCE:
            logger.warning("open_clip image tower: the class-token shortcut differs from the full forward "
                           "(%.2e); using the full forward", difference)
            return False
        return True
