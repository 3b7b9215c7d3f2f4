"""A session fixture for the conftests of suites that run torch models (imported there by name)."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The test machine is shared by many processes: one intra-op thread avoids spin-wait slowdowns."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
