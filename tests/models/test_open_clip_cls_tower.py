"""The fused, class-token-shortcut forward of open_clip ViT towers: same features, used only where it applies."""

import logging

import pytest
import torch

from letitwag.models import load_encoder
from letitwag.models import open_clip_cls_tower
from letitwag.models.open_clip_cls_tower import ClassTokenTower, class_token_features, supports_class_token_tower


def _pixels(encoder, rows=5, seed=0):
    size = encoder.model.visual.image_size
    size = size[0] if isinstance(size, tuple) else size
    return torch.randn(rows, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_shortcut_matches_the_full_tower(tiny_open_clip):
    encoder = load_encoder(tiny_open_clip)
    assert isinstance(encoder._image_tower, ClassTokenTower)
    pixels = _pixels(encoder)
    with torch.inference_mode():
        full = encoder.model.encode_image(pixels)
        short = class_token_features(encoder.model.visual, pixels)
        through_encoder = encoder.encode_images(pixels)
    assert short.shape == full.shape == (5, 32)
    torch.testing.assert_close(short, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(through_encoder, torch.nn.functional.normalize(full, dim=-1), rtol=1e-5, atol=1e-6)
    assert encoder._image_tower.verified is True


def test_a_shortcut_that_disagrees_falls_back_to_the_full_tower(tiny_open_clip, monkeypatch, caplog):
    encoder = load_encoder(tiny_open_clip)
    monkeypatch.setattr(open_clip_cls_tower, "class_token_features", lambda visual, pixels: visual(pixels) + 1.0)
    pixels = _pixels(encoder, seed=1)
    with caplog.at_level(logging.WARNING), torch.inference_mode():
        features = encoder._image_tower(pixels)
        full = encoder.model.encode_image(pixels)
    assert encoder._image_tower.verified is False
    assert "using the full forward" in caplog.text
    torch.testing.assert_close(features, full)


def test_fused_attention_matches_multihead_attention(tiny_open_clip):
    block = load_encoder(tiny_open_clip).model.visual.transformer.resblocks[0]
    normed = torch.randn(3, 10, block.attn.embed_dim, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = block.attn(normed, normed, normed, need_weights=False)[0]
        torch.testing.assert_close(open_clip_cls_tower._attention(block.attn, normed), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(open_clip_cls_tower._attention(block.attn, normed, class_token_only=True),
                                   expected[:, :1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change", ["avg_pool", "tokens", "reduced_precision", "zero_attention"])
def test_towers_it_does_not_apply_to(tiny_open_clip, change):
    if change == "reduced_precision":
        encoder = load_encoder(tiny_open_clip, precision="bf16")
        assert not isinstance(encoder._image_tower, ClassTokenTower)
        return
    model = load_encoder(tiny_open_clip).model
    if change == "avg_pool":
        model.visual.pool_type = "avg"
    elif change == "zero_attention":  # an attention variant the fused path does not reproduce
        model.visual.transformer.resblocks[-1].attn.add_zero_attn = True
    else:
        model.visual.output_tokens = True
    assert supports_class_token_tower(model) is False


def test_not_an_open_clip_model():
    assert supports_class_token_tower(torch.nn.Linear(2, 2)) is False
