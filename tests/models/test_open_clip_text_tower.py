"""The trimmed open_clip text tower (stops at the batch's last end-of-text token): same features, used only
where it applies. Tiny RANDOM-WEIGHT model (plumbing)."""

import logging

import pytest
import torch

from letitwag.models import load_encoder
from letitwag.models import open_clip_cls_tower, open_clip_text_tower
from letitwag.models.open_clip_text_tower import TrimmedTextTower, supports_trimmed_text, trimmed_text_features

TEXTS = ["a dog", "two zebras standing next to a red fire hydrant on a busy city street at night", "", "cat."]


def test_trimmed_forward_matches_encode_text(tiny_open_clip):
    encoder = load_encoder(tiny_open_clip)
    assert isinstance(encoder._text_tower, TrimmedTextTower)
    tokens = encoder.tokenizer(TEXTS)
    ends = tokens.argmax(dim=-1)
    assert int(ends.max()) + 1 < tokens.shape[1]  # the batch really is cut short
    with torch.inference_mode():
        full = encoder.model.encode_text(tokens)
        short = trimmed_text_features(encoder.model, tokens)
        through_encoder = encoder.encode_texts(TEXTS)
    torch.testing.assert_close(short, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(through_encoder, torch.nn.functional.normalize(full, dim=-1), rtol=1e-5, atol=1e-6)
    assert encoder._text_tower.verified is True


def test_a_caption_filling_the_context_is_not_cut(tiny_open_clip):
    encoder = load_encoder(tiny_open_clip)
    tokens = encoder.tokenizer([" ".join(["zebra"] * 100), "a dog"])
    with torch.inference_mode():
        torch.testing.assert_close(trimmed_text_features(encoder.model, tokens), encoder.model.encode_text(tokens),
                                   rtol=1e-5, atol=1e-6)


def test_causal_fused_attention_matches_masked_multihead_attention(tiny_open_clip):
    model = load_encoder(tiny_open_clip).model
    block = model.transformer.resblocks[0]
    normed = torch.randn(3, 9, block.attn.embed_dim, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        expected = block.attn(normed, normed, normed, need_weights=False, attn_mask=model.attn_mask[:9, :9])[0]
        torch.testing.assert_close(open_clip_cls_tower._attention(block.attn, normed, causal=True), expected,
                                   rtol=1e-5, atol=1e-6)


def test_a_trimmed_forward_that_disagrees_falls_back_to_encode_text(tiny_open_clip, monkeypatch, caplog):
    encoder = load_encoder(tiny_open_clip)
    monkeypatch.setattr(open_clip_text_tower, "trimmed_text_features", lambda model, tokens: model.encode_text(tokens) + 1)
    tokens = encoder.tokenizer(TEXTS)
    with caplog.at_level(logging.WARNING), torch.inference_mode():
        features = encoder._text_tower(tokens)
        full = encoder.model.encode_text(tokens)
    assert encoder._text_tower.verified is False
    assert "text tower" in caplog.text and "using the full forward" in caplog.text
    torch.testing.assert_close(features, full)


@pytest.mark.parametrize("change", ["no_mask", "first_token_pool", "reduced_precision"])
def test_text_towers_it_does_not_apply_to(tiny_open_clip, change):
    if change == "reduced_precision":
        assert not isinstance(load_encoder(tiny_open_clip, precision="bf16")._text_tower, TrimmedTextTower)
        return
    model = load_encoder(tiny_open_clip).model
    if change == "no_mask":  # a bidirectional text tower reads padding too: cutting it would change features
        model.attn_mask = None
    else:
        model.text_pool_type = "first"
    assert supports_trimmed_text(model) is False
    assert supports_trimmed_text(torch.nn.Linear(2, 2)) is False
