"""Shared pytest setup: no hub access, deterministic seeds, one torch thread."""

import os
import random

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _seed():
    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread for the whole session (every test, from the first): the models under test are tiny,
    and on a busy shared machine two spinning OpenMP threads per process make them ~20x slower (measured: 30
    CTC steps 77 s with 2 threads, 4 s with 1). Before, this held only from the first test that asked for it,
    so the tests that ran earlier (data_prep, encoders) had 2 threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
