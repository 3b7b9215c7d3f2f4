"""An open_clip ViT image tower with fused attention and its last block for the class token only.

Why: two savings on a CPU, each the same features up to float rounding (max |difference| ~3e-6
on ViT-B-32):

* A ViT that pools its class token (``pool_type='tok'``, every CLIP ViT) reads nothing of the
  other tokens' outputs of the last block, yet ``VisionTransformer.forward`` computes them:
  their MLP, attention output projection and queries are ~1/13 of ViT-B-32's arithmetic. Here
  the last block attends from the class token only (keys and values still come from every
  token) and runs the MLP on that one token: ~8% less compute.
* ``nn.MultiheadAttention``'s inference path projects q, k and v without their bias, then adds
  it in a separate pass that also splits the heads (``_transform_bias_rescale_qkv``), and runs
  softmax and two batched products apart. One biased projection and
  ``scaled_dot_product_attention`` (one fused kernel) do the same work faster: with both
  savings ``benchmarks/bench_image_tower.py`` compares this tower with the eager one on one
  thread, and ``bench_evaluate.py`` went from 1.28x to 1.33x CLIP_benchmark.

It builds on open_clip internals (``VisionTransformer._embeds``, the pre-norm
``ResidualAttentionBlock`` with a packed-projection ``nn.MultiheadAttention``), so it is used
only where the tower has exactly that shape, and ``ClassTokenTower.verified`` compares it with
the full forward on the first images it sees (``verified_shortcut``): a future open_clip that
changes the block falls back to the full forward instead of giving different features.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from letitwag.models.verified_shortcut import VerifiedShortcut


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
        and all(type(block) is ResidualAttentionBlock and not hasattr(block, "ln_1_kv")
                and _packed_self_attention(block.attn) for block in blocks)
    )


def _packed_self_attention(attn) -> bool:
    """An ``nn.MultiheadAttention`` that ``_attention`` reproduces: one packed, biased input
    projection, batch first, no extra key/value biases or zero attention."""
    return (isinstance(attn, nn.MultiheadAttention) and attn.batch_first and attn._qkv_same_embed_dim
            and attn.in_proj_bias is not None and attn.bias_k is None and not attn.add_zero_attn)


def _attention(attn, normed, class_token_only: bool = False, causal: bool = False):
    """``attn(normed, normed, normed)`` (queries from the class token only, if asked; each token
    attending to itself and the tokens before it, if ``causal``) as biased projections and one
    ``scaled_dot_product_attention``."""
    batch, tokens, width = normed.shape
    heads = attn.num_heads
    weight, bias = attn.in_proj_weight, attn.in_proj_bias
    if class_token_only:
        queries = F.linear(normed[:, :1], weight[:width], bias[:width]).view(batch, 1, heads, -1).transpose(1, 2)
        keys, values = F.linear(normed, weight[width:], bias[width:]).view(
            batch, tokens, 2, heads, -1).permute(2, 0, 3, 1, 4)
    else:
        queries, keys, values = F.linear(normed, weight, bias).view(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4)
    attended = F.scaled_dot_product_attention(queries, keys, values, is_causal=causal)
    merged = attended.transpose(1, 2).reshape(batch, queries.shape[2], width)
    return F.linear(merged, attn.out_proj.weight, attn.out_proj.bias)


def class_token_features(visual, pixels):
    """``visual(pixels)`` with fused attention and the last block computed for the class token only."""
    tokens = visual._embeds(pixels)
    *body, last = visual.transformer.resblocks
    for block in body:
        tokens = tokens + block.ls_1(_attention(block.attn, block.ln_1(tokens)))
        tokens = tokens + block.ls_2(block.mlp(block.ln_2(tokens)))
    cls = tokens[:, :1] + last.ls_1(_attention(last.attn, last.ln_1(tokens), class_token_only=True))
    cls = cls + last.ls_2(last.mlp(last.ln_2(cls)))
    pooled = visual.ln_post(cls[:, 0])  # LayerNorm is per token: the same before or after pooling
    return pooled @ visual.proj if visual.proj is not None else pooled


class ClassTokenTower(VerifiedShortcut):
    """Callable image tower: the class-token shortcut once it has matched the full forward."""

    what = "open_clip image tower (class-token shortcut)"

    def __init__(self, visual) -> None:
        super().__init__()
        self.visual = visual

    def full(self, pixels):
        return self.visual(pixels)

    def shortcut(self, pixels):
        return class_token_features(self.visual, pixels)
