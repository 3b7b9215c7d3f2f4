"""Imported by the fork server before it forks validation workers: the validation modules
(Pillow, numpy, scipy, pyarrow) and their compiled kernels (the pHash resize, checked against
Pillow, and the pixel packing) are loaded here once by validating one small image, so each
forked worker starts validating at once instead of paying numba's start-up."""

import io

from PIL import Image

import letitwag.builders.curate.validate  # noqa: F401  (imported for the forked workers)
from letitwag.builders.curate.images import ImageLimits, check_image

_SAMPLE = io.BytesIO()
Image.new("RGB", (80, 70), (200, 120, 40)).save(_SAMPLE, format="PNG")
check_image(_SAMPLE.getvalue(), ImageLimits())
