import sys
from pathlib import Path

import pytest
from torch_threads import one_torch_thread  # noqa: F401 - fixture

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the photograph-like JPEG maker the GPU benchmark uses


@pytest.fixture(scope="session")
def photo_maker():
    from _synthetic_images import PhotoMaker

    return PhotoMaker(seed=3, textures=2, side=512)


@pytest.fixture(scope="session")
def open_clip_transform():
    """ViT-B-32's evaluation transform exactly as open_clip builds it (no weights needed)."""
    import open_clip

    return open_clip.image_transform(224, is_train=False)
