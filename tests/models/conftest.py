import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from torch_threads import one_torch_thread  # noqa: E402, F401 - fixture


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_open_clip(tiny_dir):
    from letitwag.models.tiny import build_tiny_open_clip

    return build_tiny_open_clip(tiny_dir / "open_clip")
