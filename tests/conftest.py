"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

# The suite runs the cells' gate arithmetic eagerly: under bf16 autocast (the configs' "auto" precision
# on this CPU) every gate function would otherwise be compiled, 7-35 s each per process. The compiled
# path has its own small tests (tests/cells/test_fusion.py), which turn it on. Set before lstmvision is
# imported, and inherited by the CLI subprocesses.
os.environ.setdefault("LSTMVISION_GATE_FUSION", "0")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Run a module on one torch thread: its tensors are tiny, and a second thread only adds
    synchronisation (10x per convolution on a busy 2-core CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
