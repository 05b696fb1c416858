import pytest
import torch

# The suite's models are tiny: one intra-op thread is faster than several, and on a shared or 2-core machine
# several threads stall each other (5-100x slower measured here). Subprocess tests set their own.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
