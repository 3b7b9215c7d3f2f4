"""Loading every adapter for real, from tiny random-weight models built and saved in the test."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from letitwag.errors import UserInputError
from letitwag.models import ModelOutputError, list_models, load_encoder, load_generator, parse_spec
from letitwag.models import tiny


def _images():
    return [Image.new("RGB", (40 + 7 * i, 30), (50 * i, 255 - 40 * i, 90)) for i in range(4)]


def _check_encoder(encoder, dim):
    pixels = torch.stack([encoder.preprocess(image) for image in _images()])
    image_features = encoder.encode_images(pixels)
    text_features = encoder.encode_texts(["a photo of a dog", "a cat", "x"])
    assert image_features.shape == (4, dim) and text_features.shape == (3, dim)
    assert image_features.dtype == torch.float32
    torch.testing.assert_close(image_features.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(text_features.norm(dim=1), torch.ones(3))
    # different inputs give different embeddings: the model really ran
    assert not torch.allclose(image_features[0], image_features[3])
    assert not torch.allclose(text_features[0], text_features[1])
    return image_features


def test_tiny_open_clip_round_trip(tiny_open_clip, tiny_dir):
    encoder = load_encoder(tiny_open_clip)
    features = _check_encoder(encoder, 32)
    meta = encoder.metadata()
    assert meta["adapter"] == "open_clip" and meta["name"] == tiny.TINY_OPEN_CLIP_ARCH
    assert meta["random_weights"] is True and meta["plumbing_model"] is True
    assert meta["resolved_checkpoint"].endswith("open_clip_model.safetensors")
    # the same weights through open_clip's local-dir schema give the same features
    again = load_encoder(f"open_clip:local-dir:{tiny_dir / 'open_clip'}")
    pixels = torch.stack([again.preprocess(image) for image in _images()])
    torch.testing.assert_close(again.encode_images(pixels), features)


def test_open_clip_state_dict_via_weights_only_torch_load(tiny_open_clip, tmp_path):
    from safetensors.torch import load_file

    source = parse_spec(tiny_open_clip).pretrained
    folder = tmp_path / "pt"
    folder.mkdir()
    shutil.copy(source.replace("open_clip_model.safetensors", f"{tiny.TINY_OPEN_CLIP_ARCH}.json"), folder)
    torch.save(load_file(source), folder / "model.pt")
    encoder = load_encoder(f"open_clip:{tiny.TINY_OPEN_CLIP_ARCH}/{folder / 'model.pt'}")
    _check_encoder(encoder, 32)


def test_open_clip_arch_without_weights_is_marked_random():
    spec = parse_spec("open_clip:ViT-S-32")
    assert spec.pretrained is None and spec.adapter == "open_clip"


@pytest.fixture(scope="module")
def tiny_hf_clip(tiny_dir):
    return tiny.build_tiny_transformers_clip(tiny_dir / "hf_clip")


def test_transformers_clip_round_trip(tiny_hf_clip):
    encoder = load_encoder(tiny_hf_clip)
    _check_encoder(encoder, 32)
    meta = encoder.metadata()
    assert meta["model_type"] == "clip" and meta["random_weights"] is True


def test_offline_clip_tokenizer_matches_open_clip(tiny_dir):
    import open_clip

    tokenizer = tiny.offline_clip_tokenizer(tiny_dir / "bpe")
    for text in ["a photo of a Harris's hawk.", "A300B4 airliner", "eastern hog-nosed snake"]:
        ids = tokenizer([text])["input_ids"][0]
        reference = open_clip.tokenize([text])[0]
        assert ids == reference[: len(ids)].tolist()


def test_siglip_round_trip_pads_to_max_length(tiny_dir):
    spec = tiny.build_tiny_siglip(tiny_dir / "siglip")
    encoder = load_encoder(spec)
    _check_encoder(encoder, 32)
    assert encoder.metadata()["model_type"] == "siglip"
    # SigLIP embeds a text the same whether its batch-mates are long or short (max-length padding)
    alone = encoder.encode_texts(["a cat"])
    with_long = encoder.encode_texts(["a cat", "a very long caption about a small cat on a mat"])
    torch.testing.assert_close(alone[0], with_long[0])


def test_diffusers_round_trip_seeded(tiny_dir):
    spec = tiny.build_tiny_diffusers(tiny_dir / "sd")
    generator = load_generator(spec)
    first = generator.generate(["a dog", "a cat"], seed=3, num_inference_steps=2)
    again = generator.generate(["a cat"], seed=[4], num_inference_steps=2)
    assert [image.size for image in first] == [(64, 64), (64, 64)]
    # image 2 of the first batch used seed 4: the same image alone in a batch of one
    # (up to float rounding of batched matmuls: at most 2 levels of 255)
    difference = np.abs(np.asarray(first[1], dtype=int) - np.asarray(again[0], dtype=int))
    assert difference.max() <= 2
    assert np.abs(np.asarray(first[0], dtype=int) - np.asarray(first[1], dtype=int)).max() > 10
    assert generator.metadata()["random_weights"] is True


def test_python_adapter_encoder_and_generator():
    encoder = load_encoder("python:fake_models:good")
    _check_encoder(encoder, 4)
    assert encoder.logit_scale == 10.0
    generator = load_generator("python:fake_models:generator")
    assert len(generator.generate(["a", "bb"], seed=1)) == 2


def test_model_returning_nan_or_wrong_shape_is_a_clear_error():
    pixels = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ModelOutputError, match="NaN"):
        load_encoder("python:fake_models:nan").encode_images(pixels)
    with pytest.raises(ModelOutputError, match=r"shape \[3, 4\], expected \[2, D\]"):
        load_encoder("python:fake_models:wrong_shape").encode_images(pixels)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("open_cilp:ViT-B-32/laion2b_s34b_b79k", "did you mean: open_clip"),
        ("open_clip:ViT-B-23/laion2b_s34b_b79k", "did you mean: ViT-B-32"),
        ("open_clip:ViT-B-32/laion2b_s34b_b97k", "did you mean: laion2b_s34b_b79k"),
        ("ViT-B-32", "unknown adapter"),
        ("python:nomodule", "python:package.module:factory"),
        ("python:fake_models:godo", "did you mean: good"),
        ("diffusers:/nonexistent/pipeline", "cannot load with diffusers"),
    ],
)
def test_bad_specs_list_close_matches(spec, fragment):
    with pytest.raises(UserInputError, match=fragment.replace("(", r"\(")) as info:
        if spec.startswith("diffusers"):
            load_generator(spec)
        elif spec.startswith("python:fake"):
            load_encoder(spec)
        else:
            parse_spec(spec)
    assert "\n" not in str(info.value)


def test_wrong_checkpoint_for_architecture(tiny_open_clip, tmp_path):
    source = parse_spec(tiny_open_clip).pretrained
    other = dict(tiny.TINY_OPEN_CLIP_CONFIG, embed_dim=16)
    (tmp_path / "letitwag-other-tiny.json").write_text(json.dumps(other))
    shutil.copy(source, tmp_path / "weights.safetensors")
    with pytest.raises(UserInputError, match="does not match architecture letitwag-other-tiny") as info:
        load_encoder(f"open_clip:letitwag-other-tiny/{tmp_path / 'weights.safetensors'}")
    assert "\n" not in str(info.value)
    with pytest.raises(UserInputError, match="does not exist"):
        load_encoder(f"open_clip:{tiny.TINY_OPEN_CLIP_ARCH}/{tmp_path / 'missing.safetensors'}")


def test_encoder_spec_for_generator_adapter_is_rejected(tiny_open_clip):
    with pytest.raises(UserInputError, match="loads encoders, not generators"):
        load_generator(tiny_open_clip)


def test_list_models_has_adapters_and_pretrained_tags():
    listing = list_models()
    assert set(listing["adapters"]) == {"open_clip", "transformers", "diffusers", "python"}
    assert "open_clip:ViT-B-32/laion2b_s34b_b79k" in listing["open_clip_pretrained"]


def test_transformers_wrong_checkpoint_is_one_line(tiny_hf_clip, tmp_path):
    from safetensors.torch import load_file, save_file

    source = Path(tiny_hf_clip.split(":", 1)[1])
    resized = tmp_path / "resized"
    shutil.copytree(source, resized)
    config = json.loads((resized / "config.json").read_text())
    config["vision_config"]["hidden_size"] = 48
    (resized / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserInputError, match="do not match the architecture") as info:
        load_encoder(f"transformers:{resized}")
    assert "\n" not in str(info.value)
    partial = tmp_path / "partial"
    shutil.copytree(source, partial)
    weights = {k: v for k, v in load_file(partial / "model.safetensors").items() if "text_projection" not in k}
    save_file(weights, partial / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UserInputError, match="lacks 1 weights of CLIPModel .*text_projection.weight"):
        load_encoder(f"transformers:{partial}")


def test_remote_code_never_runs_without_the_flag(tmp_path):
    marker = tmp_path / "code_ran"
    folder = tmp_path / "remote"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "letitwag_remote_test",
        "auto_map": {"AutoConfig": "configuration.RemoteConfig", "AutoModel": "configuration.RemoteModel"},
    }))
    (folder / "configuration.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(UserInputError, match="--trust-remote-code"):
        load_encoder(f"transformers:{folder}")
    assert not marker.exists()


@pytest.mark.parametrize("precision", ["bf16", "amp"])
def test_reduced_precision_gives_close_unit_vectors(tiny_open_clip, precision):
    reference = load_encoder(tiny_open_clip)
    reduced = load_encoder(tiny_open_clip, precision=precision)
    pixels = torch.stack([reference.preprocess(image) for image in _images()])
    expected, got = reference.encode_images(pixels), reduced.encode_images(pixels)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.norm(dim=1), torch.ones(4))
    assert torch.nn.functional.cosine_similarity(expected, got).min() > 0.98
    texts = reduced.encode_texts(["a photo of a dog"])
    assert torch.nn.functional.cosine_similarity(reference.encode_texts(["a photo of a dog"]), texts).item() > 0.98


def test_registered_architecture_without_checkpoint_is_random(tiny_open_clip):
    encoder = load_encoder(f"open_clip:{tiny.TINY_OPEN_CLIP_ARCH}")
    assert encoder.metadata()["random_weights"] is True and encoder.metadata()["resolved_checkpoint"] is None
