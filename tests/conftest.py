import sys
from pathlib import Path

# the hypothesis strategies live beside the tests
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a small shared machine, more threads contend and the ImageNet-sized nets slow down many times."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

