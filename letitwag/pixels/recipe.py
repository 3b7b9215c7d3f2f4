"""A model's image preprocessing read as a recipe that a tensor pipeline can reproduce.

Why: the device data path (``letitwag.pixels.pipeline``) must give the pixels the model's own
preprocessing gives, or its scores are not the model's. Rather than guess, the recipe is read off
the transform the adapter loaded: open_clip's torchvision ``Compose`` (``Resize`` ->
``CenterCrop`` -> RGB -> ``ToTensor`` -> ``Normalize``) or a transformers CLIP/SigLIP image
processor (resize -> centre crop -> rescale -> normalise). Anything else (a ``python:`` model's own
function, open_clip's keep-ratio or pad-to-square modes, an image processor with extra steps)
raises ``UnsupportedPreprocess`` with the reason, and the caller decodes on the CPU instead.
"""

from __future__ import annotations

from dataclasses import dataclass

# PIL's resampling filter numbers, which both torchvision and transformers map their modes to
_PIL_FILTERS = {2: "bilinear", 3: "bicubic"}
_RGB_CONVERSIONS = ("MaybeConvertMode", "_convert_to_rgb")
_TRANSFORMERS_PROCESSORS = ("CLIPImageProcessor", "CLIPImageProcessorFast", "SiglipImageProcessor",
                            "SiglipImageProcessorFast")
# transformers processor switches the recipe reproduces; any other ``do_*`` switched on is refused
_TRANSFORMERS_STEPS = ("do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_convert_rgb")


class UnsupportedPreprocess(ValueError):
    """The model's preprocessing has a step the tensor pipeline does not reproduce (``str``: which)."""


@dataclass(frozen=True)
class PixelRecipe:
    """Resize (shortest side to ``size[0]``, or exactly to ``size``), centre-crop, scale, normalise.

    ``crop_rounding``: torchvision centres a crop with ``round`` ((h - c) / 2), transformers with
    ``floor``; they differ by a pixel for odd margins, so the recipe keeps which one the model uses.
    """

    resize: str  # "shortest" | "exact"
    size: tuple[int, ...]  # (S,) for shortest, (H, W) for exact
    interpolation: str  # "bicubic" | "bilinear" (PIL's antialiased filters)
    crop: tuple[int, int] | None
    crop_rounding: str  # "round" | "floor"
    scale: float  # multiplies the 0..255 values (1/255)
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def output_size(self) -> tuple[int, int]:
        if self.crop is not None:
            return self.crop
        return (self.size[0], self.size[0]) if self.resize == "shortest" else (self.size[0], self.size[1])

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after the resize step, computed as torchvision and transformers do."""
        if self.resize == "exact":
            return self.size[0], self.size[1]
        target = self.size[0]
        if width <= height:
            return int(target * height / width), target
        return target, int(target * width / height)

    def crop_origin(self, height: int, width: int) -> tuple[int, int]:
        """(top, left) of the centre crop of a resized ``height`` x ``width`` image."""
        if self.crop is None:
            return 0, 0
        rows, cols = height - self.crop[0], width - self.crop[1]
        if self.crop_rounding == "round":
            return int(round(rows / 2.0)), int(round(cols / 2.0))
        return int(rows / 2.0), int(cols / 2.0)


def _filter_name(value) -> str:
    """'bicubic' / 'bilinear' from a torchvision ``InterpolationMode``, a PIL filter enum or int."""
    name = getattr(value, "value", value)
    if isinstance(name, str) and name in ("bicubic", "bilinear"):
        return name
    try:
        return _PIL_FILTERS[int(name)]
    except (KeyError, TypeError, ValueError):
        raise UnsupportedPreprocess(f"resampling filter {value!r} (only bicubic and bilinear are reproduced)") from None


def _check_crop_fits(recipe: PixelRecipe) -> PixelRecipe:
    """A crop larger than the resized image would be zero-padded; the pipeline does not pad."""
    if recipe.crop is None:
        return recipe
    smallest = (recipe.size[0], recipe.size[0]) if recipe.resize == "shortest" else recipe.size
    if recipe.crop[0] > smallest[0] or recipe.crop[1] > smallest[1]:
        raise UnsupportedPreprocess(f"crop {recipe.crop} larger than the resized image {smallest} (padding)")
    return recipe


def _size_pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    return (int(size[0]), int(size[0])) if len(size) == 1 else (int(size[0]), int(size[1]))


def _from_torchvision(transforms: list) -> PixelRecipe:
    """open_clip's (and torchvision's usual) evaluation transform, checked step by step."""
    resize = crop = mean = std = None
    interpolation, tensor_seen = "bilinear", False
    for step in transforms:
        name = getattr(step, "__name__", type(step).__name__)
        if name == "Resize" and resize is None and crop is None and not tensor_seen:
            if getattr(step, "max_size", None) is not None:
                raise UnsupportedPreprocess("Resize with max_size")
            size = step.size
            if isinstance(size, int) or len(size) == 1:
                resize = ("shortest", (int(size if isinstance(size, int) else size[0]),))
            else:
                resize = ("exact", (int(size[0]), int(size[1])))
            interpolation = _filter_name(step.interpolation)
        elif name == "CenterCrop" and crop is None and resize is not None and not tensor_seen:
            crop = _size_pair(step.size)
        elif name in _RGB_CONVERSIONS and not tensor_seen:
            continue
        elif name in ("ToTensor", "MaybeToTensor") and not tensor_seen:
            tensor_seen = True
        elif name == "Normalize" and tensor_seen and mean is None:
            mean, std = tuple(float(m) for m in step.mean), tuple(float(s) for s in step.std)
        else:
            raise UnsupportedPreprocess(f"transform step {name} (at this place) has no tensor equivalent here")
    if resize is None or not tensor_seen:
        raise UnsupportedPreprocess("no Resize or no ToTensor step: the output size is not fixed")
    mean, std = mean or (0.0, 0.0, 0.0), std or (1.0, 1.0, 1.0)
    return _check_crop_fits(PixelRecipe(resize[0], resize[1], interpolation, crop, "round", 1.0 / 255.0,
                                        _three(mean), _three(std)))


def _three(values: tuple[float, ...]) -> tuple[float, float, float]:
    if len(values) == 1:
        return (values[0],) * 3
    if len(values) != 3:
        raise UnsupportedPreprocess(f"normalisation over {len(values)} channels")
    return values  # type: ignore[return-value]


def _size_field(size, key: str):
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def _from_image_processor(processor) -> PixelRecipe:
    """A transformers CLIP or SigLIP image processor (PIL or torchvision backend)."""
    name = type(processor).__name__
    if name not in _TRANSFORMERS_PROCESSORS:
        raise UnsupportedPreprocess(f"image processor {name} (reproduced: {', '.join(_TRANSFORMERS_PROCESSORS)})")
    extra = sorted(key for key, value in vars(processor).items()
                   if key.startswith("do_") and value and key not in _TRANSFORMERS_STEPS)
    if extra:
        raise UnsupportedPreprocess(f"image processor {name} switches on {', '.join(extra)}")
    if not processor.do_resize:
        raise UnsupportedPreprocess(f"image processor {name} does not resize: the output size is not fixed")
    size = processor.size
    shortest, height, width = (_size_field(size, key) for key in ("shortest_edge", "height", "width"))
    others = [key for key in ("longest_edge", "max_height", "max_width", "min_pixels", "max_pixels")
              if _size_field(size, key)]
    if others or not (shortest or (height and width)):
        raise UnsupportedPreprocess(f"image processor {name} resize rule {size}")
    resize = ("shortest", (int(shortest),)) if shortest else ("exact", (int(height), int(width)))
    crop = None
    if getattr(processor, "do_center_crop", False):
        crop = (int(_size_field(processor.crop_size, "height")), int(_size_field(processor.crop_size, "width")))
    scale = float(processor.rescale_factor) if processor.do_rescale else 1.0
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if processor.do_normalize:
        mean, std = _three(tuple(map(float, processor.image_mean))), _three(tuple(map(float, processor.image_std)))
    return _check_crop_fits(PixelRecipe(resize[0], resize[1], _filter_name(processor.resample), crop, "floor",
                                        scale, mean, std))


def recipe_from_preprocess(preprocess) -> PixelRecipe:
    """The recipe of an encoder's ``preprocess`` (PIL image -> CHW tensor), or ``UnsupportedPreprocess``."""
    processor = getattr(preprocess, "image_processor", None)
    if processor is not None:
        return _from_image_processor(processor)
    transforms = getattr(preprocess, "transforms", None)
    if isinstance(transforms, list):
        return _from_torchvision(transforms)
    raise UnsupportedPreprocess(f"preprocess {type(preprocess).__name__} is neither a torchvision Compose nor a "
                                "transformers image processor")
