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


# The recipe runs, longest first (minutes on the CI machine, 2026-12-07); any other integration test after them.
_INTEGRATION_ORDER = ("test_mini_recipe", "test_asr_cpu_recipe", "test_pretrained_cpu_recipe",
                      "test_librispeech_recipe")


def pytest_collection_modifyitems(config, items):
    """Integration tests (recipe runs, minutes each) first, longest first, then the rest in pytest's order.

    With `pytest -n 2 --maxschedchunk 1` (the README's command) xdist hands the first two items to one worker
    and the next two to the other, then one test at a time to whichever worker is free: the long recipe runs
    start at once, two per worker, while the short tests fill the gaps. Started last, one recipe run alone
    would set the wall time. Serially the order changes nothing but when they run."""

    def rank(item) -> tuple[int, int]:
        if item.get_closest_marker("integration") is None:
            return (1, 0)
        module = item.module.__name__.rsplit(".", 1)[-1]
        return (0, _INTEGRATION_ORDER.index(module) if module in _INTEGRATION_ORDER else len(_INTEGRATION_ORDER))

    items[:] = [item for _, item in sorted(enumerate(items), key=lambda p: (rank(p[1]), p[0]))]
