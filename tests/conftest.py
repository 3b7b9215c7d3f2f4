"""Suite-wide: a test marked ``gpu`` needs a CUDA device; without one it is skipped with that
reason (every such test has a CPU twin that runs everywhere)."""

import pytest


def pytest_collection_modifyitems(config, items):
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; its CPU twin runs on this machine")
    for item in gpu_tests:
        item.add_marker(skip)
