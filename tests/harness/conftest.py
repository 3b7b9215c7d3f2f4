import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dataset_helpers import make_dataset, write_hub_layout  # noqa: E402
from torch_threads import one_torch_thread  # noqa: E402, F401 - fixture


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory):
    from letitwag.models.tiny import build_tiny_open_clip

    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny") / "open_clip")


@pytest.fixture(scope="session")
def hub_dataset(tmp_path_factory):
    return write_hub_layout(make_dataset(12, corrupt_rows=(5,)), tmp_path_factory.mktemp("ds") / "hub")


BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # peer_clip_benchmark writes the webdataset fixtures both tools read
