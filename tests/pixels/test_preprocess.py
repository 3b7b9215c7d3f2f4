"""The tensor path's resize, crop and normalisation against the model's own PIL preprocessing.

Both sides start from the same decoded pixels (torchvision's CPU decoder gives PIL's pixels for
a baseline JPEG, checked here too), so any difference is the tensor path's.
"""

import io

import numpy as np
import pytest
from PIL import Image

from letitwag.pixels import preprocess as preprocess_module
from letitwag.pixels.preprocess import TensorPreprocess
from letitwag.pixels.recipe import recipe_from_preprocess

# (width, height): downscales, upscales, odd crop margins, no resize on one axis, thin strips
SIZES = [(500, 375), (375, 500), (640, 427), (301, 299), (224, 300), (225, 224), (224, 224), (150, 100),
         (97, 131), (800, 200), (1030, 771)]


def _jpegs(photo_maker, sizes, grey=False):
    rng = np.random.default_rng(11)
    blobs = []
    for label, size in enumerate(sizes):
        picture = Image.fromarray(photo_maker.pixels(rng, label, size))
        buffer = io.BytesIO()
        (picture.convert("L") if grey else picture).save(buffer, "JPEG", quality=90)
        blobs.append(buffer.getvalue())
    return blobs


def _decoded(blobs):
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    return [decode_jpeg(torch.frombuffer(bytearray(b), dtype=torch.uint8), mode=ImageReadMode.RGB) for b in blobs]


def _levels(ours, reference, std) -> np.ndarray:
    """Per-pixel difference in 0..255 levels (undoing the normalisation)."""
    import torch

    return ((ours - reference).abs() * torch.tensor(std)[:, None, None] * 255).round().numpy()


def test_cpu_decoder_gives_pils_pixels(photo_maker):
    blobs = _jpegs(photo_maker, SIZES[:4]) + _jpegs(photo_maker, SIZES[:2], grey=True)
    for blob, tensor in zip(blobs, _decoded(blobs)):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")), tensor.permute(1, 2, 0).numpy())


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_tensor_path_matches_open_clip_pil_preprocessing(photo_maker, interpolation):
    import open_clip
    import torch

    transform = open_clip.image_transform(224, is_train=False, interpolation=interpolation)
    blobs = _jpegs(photo_maker, SIZES) + _jpegs(photo_maker, SIZES[:3], grey=True)
    reference = torch.stack([transform(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])
    recipe = recipe_from_preprocess(transform)
    decoded = _decoded(blobs)
    exact = TensorPreprocess(recipe, exact=True)(decoded)
    assert exact.shape == reference.shape and exact.dtype == torch.float32
    assert _levels(exact, reference, recipe.std).max() == 0  # PIL's pixels, one for one
    levels = _levels(TensorPreprocess(recipe)(decoded), reference, recipe.std)
    assert levels.max() <= 1  # float32 sums of PIL's quantised weights: a rounding tie flips now and then
    assert (levels > 0).mean() < 2e-3


def test_buckets_split_and_merge_back_in_order(photo_maker, monkeypatch, open_clip_transform):
    blobs = _jpegs(photo_maker, SIZES)
    decoded = _decoded(blobs)
    pipeline = TensorPreprocess(recipe_from_preprocess(open_clip_transform))
    whole = pipeline(decoded)
    monkeypatch.setattr(preprocess_module, "MAX_BUCKET_ELEMENTS", 1)  # one image per product
    assert (pipeline(decoded) == whole).all()
    assert (pipeline(decoded[::-1]) == whole.flip(0)).all()


def test_tensor_path_matches_transformers_processors(tmp_path, photo_maker):
    import torch

    from letitwag.models import load_encoder
    from letitwag.models.tiny import build_tiny_siglip, build_tiny_transformers_clip

    blobs = _jpegs(photo_maker, [(60, 45), (33, 47), (32, 32), (80, 31), (20, 24)])
    decoded = _decoded(blobs)
    for build in (build_tiny_transformers_clip, build_tiny_siglip):
        preprocess = load_encoder(build(tmp_path / build.__name__)).preprocess
        reference = torch.stack([preprocess(Image.open(io.BytesIO(b))) for b in blobs])
        recipe = recipe_from_preprocess(preprocess)
        levels = _levels(TensorPreprocess(recipe)(decoded), reference, recipe.std)
        # transformers resizes with torch's uint8 kernel, itself within a level of PIL's
        assert levels.max() <= 2, build.__name__
        assert (levels > 0).mean() < 0.02, build.__name__


@pytest.mark.gpu
def test_cuda_tensor_path_matches_its_cpu_twin(photo_maker, open_clip_transform):
    blobs = _jpegs(photo_maker, SIZES)
    decoded = _decoded(blobs)
    recipe = recipe_from_preprocess(open_clip_transform)
    on_cpu = TensorPreprocess(recipe, exact=True)(decoded)
    on_cuda = TensorPreprocess(recipe)([image.cuda() for image in decoded]).cpu()
    levels = _levels(on_cuda, on_cpu, recipe.std)
    assert levels.max() <= 1 and (levels > 0).mean() < 2e-3
