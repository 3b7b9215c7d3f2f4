import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_open_clip(tiny_dir):
    from letitwag.models.tiny import build_tiny_open_clip

    return build_tiny_open_clip(tiny_dir / "open_clip")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The test machine is shared by many processes: one intra-op thread avoids spin-wait slowdowns."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
