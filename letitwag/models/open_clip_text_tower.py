"""An open_clip CLIP text tower that stops at the last token any caption of the batch uses.

Why: open_clip pads every text to 77 tokens and runs all of them through the transformer, yet a
CLIP text tower masks attention causally and reads the output at one token, the end-of-text
token (``text_pool_type`` ``argmax``/``eos``). The output at a position depends only on the
tokens before it, so the padding after the last end-of-text token of the batch changes nothing:
cutting the batch there gives the same features up to float rounding. COCO captions are ~13
tokens, so a caption costs ~1/5 of the padded forward (``benchmarks/bench_retrieval.py``). The
attention of every block also runs as one biased projection and one causal
``scaled_dot_product_attention`` (``open_clip_cls_tower._attention``).

It relies on open_clip internals (``CLIP.encode_text`` with a causal ``attn_mask`` buffer and
pre-norm ``ResidualAttentionBlock``s), so it is used only where the model has exactly that
shape, and ``TrimmedTextTower`` compares it with ``encode_text`` on the first texts it sees
(``verified_shortcut``): a mismatch falls back to the full forward.
"""

from __future__ import annotations

import torch

from letitwag.models.open_clip_cls_tower import _attention, _packed_self_attention
from letitwag.models.verified_shortcut import VerifiedShortcut


def _is_causal_mask(mask) -> bool:
    """The additive mask open_clip builds: 0 on and below the diagonal, -inf above it."""
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    upper = torch.triu(torch.ones_like(mask, dtype=torch.bool), diagonal=1)
    return bool(torch.isneginf(mask[upper]).all() and (mask[~upper] == 0).all())


def supports_trimmed_text(model) -> bool:
    """Whether ``model.encode_text`` is open_clip's ``CLIP.encode_text`` over plain pre-norm blocks with a
    causal mask, pooling one end-of-text token."""
    try:
        from open_clip.model import CLIP
        from open_clip.transformer import ResidualAttentionBlock
    except ImportError:
        return False
    if getattr(type(model), "encode_text", None) is not CLIP.encode_text:
        return False
    blocks = getattr(getattr(model, "transformer", None), "resblocks", None)
    return (
        getattr(model, "text_pool_type", None) in ("argmax", "eos")
        and _is_causal_mask(getattr(model, "attn_mask", None))
        and getattr(model.transformer, "batch_first", False)
        and blocks is not None
        and len(blocks) > 0
        and all(type(block) is ResidualAttentionBlock and not hasattr(block, "ln_1_kv")
                and _packed_self_attention(block.attn) for block in blocks)
    )


def _end_positions(model, tokens):
    """The token each text's features are read at (as ``open_clip.transformer.text_global_pool``)."""
    if model.text_pool_type == "argmax":
        return tokens.argmax(dim=-1)
    return (tokens == model.text_eos_id).int().argmax(dim=-1)


def trimmed_text_features(model, tokens):
    """``model.encode_text(tokens)`` computed on the tokens up to the batch's last end-of-text token."""
    ends = _end_positions(model, tokens)
    length = int(ends.max()) + 1
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens[:, :length]).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    for block in model.transformer.resblocks:
        x = x + block.ls_1(_attention(block.attn, block.ln_1(x), causal=True))
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
    pooled = model.ln_final(x[torch.arange(x.shape[0], device=x.device), ends])  # LayerNorm is per token
    projection = model.text_projection
    if projection is None:
        return pooled
    return projection(pooled) if isinstance(projection, torch.nn.Linear) else pooled @ projection


class TrimmedTextTower(VerifiedShortcut):
    """Callable text tower on token ids: the trimmed forward once it has matched ``encode_text``."""

    what = "open_clip text tower (trimmed to the last end-of-text token)"

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def full(self, tokens):
        return self.model.encode_text(tokens)

    def shortcut(self, tokens):
        return trimmed_text_features(self.model, tokens)
