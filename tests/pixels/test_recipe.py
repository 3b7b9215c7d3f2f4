"""The model's preprocessing read as a recipe, and refused where the tensor path would differ."""

import pytest

from letitwag.pixels.recipe import PixelRecipe, UnsupportedPreprocess, recipe_from_preprocess


def test_open_clip_vit_transform_becomes_shortest_side_bicubic_centre_crop(open_clip_transform):
    import open_clip

    recipe = recipe_from_preprocess(open_clip_transform)
    assert recipe == PixelRecipe("shortest", (224,), "bicubic", (224, 224), "round", 1 / 255,
                                 tuple(open_clip.OPENAI_DATASET_MEAN), tuple(open_clip.OPENAI_DATASET_STD))
    assert recipe.output_size == (224, 224)
    assert recipe.resized_size(375, 500) == (224, 298)  # torchvision: int(224 * 500 / 375)
    assert recipe.resized_size(500, 333) == (336, 224)
    assert recipe.crop_origin(224, 299) == (0, 38)  # round(37.5) = 38, as torchvision centres


def test_open_clip_modes_the_path_cannot_reproduce_are_refused():
    import open_clip

    for mode in ("longest",):  # keep-ratio resize + pad to square
        transform = open_clip.image_transform(224, is_train=False, resize_mode=mode)
        with pytest.raises(UnsupportedPreprocess, match="ResizeKeepRatio"):
            recipe_from_preprocess(transform)
    squash = recipe_from_preprocess(open_clip.image_transform(224, is_train=False, resize_mode="squash"))
    assert (squash.resize, squash.size, squash.crop) == ("exact", (224, 224), None)


def test_torchvision_steps_out_of_place_or_unknown_are_refused():
    from torchvision import transforms as T

    with pytest.raises(UnsupportedPreprocess, match="RandomHorizontalFlip"):
        recipe_from_preprocess(T.Compose([T.Resize(32), T.RandomHorizontalFlip(), T.ToTensor()]))
    with pytest.raises(UnsupportedPreprocess, match="not fixed"):
        recipe_from_preprocess(T.Compose([T.ToTensor()]))
    with pytest.raises(UnsupportedPreprocess, match="filter"):
        recipe_from_preprocess(T.Compose([T.Resize(32, interpolation=T.InterpolationMode.LANCZOS), T.ToTensor()]))
    with pytest.raises(UnsupportedPreprocess, match="padding"):
        recipe_from_preprocess(T.Compose([T.Resize((20, 40)), T.CenterCrop(32), T.ToTensor()]))
    with pytest.raises(UnsupportedPreprocess, match="neither"):
        recipe_from_preprocess(lambda image: image)


def test_transformers_clip_and_siglip_processors(tmp_path):
    from letitwag.models import load_encoder
    from letitwag.models.tiny import build_tiny_siglip, build_tiny_transformers_clip

    clip = recipe_from_preprocess(load_encoder(build_tiny_transformers_clip(tmp_path / "clip")).preprocess)
    assert (clip.resize, clip.size, clip.interpolation, clip.crop, clip.crop_rounding) == (
        "shortest", (32,), "bicubic", (32, 32), "floor")
    siglip = recipe_from_preprocess(load_encoder(build_tiny_siglip(tmp_path / "siglip")).preprocess)
    assert (siglip.resize, siglip.size, siglip.crop, siglip.mean, siglip.std) == (
        "exact", (32, 32), None, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_transformers_processor_with_extra_steps_is_refused(tmp_path):
    from letitwag.models import load_encoder
    from letitwag.models.tiny import build_tiny_transformers_clip

    preprocess = load_encoder(build_tiny_transformers_clip(tmp_path / "clip")).preprocess
    preprocess.image_processor.do_pad = True
    with pytest.raises(UnsupportedPreprocess, match="do_pad"):
        recipe_from_preprocess(preprocess)
