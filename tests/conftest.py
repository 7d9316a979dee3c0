"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module: inputs in these tests are tiny, so a thread pool only costs time (most of
    all on a shared CPU), and bit-exact comparisons hold per thread setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def add_weight_noise(model: torch.nn.Module, seed: int, scale: float) -> torch.nn.Module:
    """Add N(0, scale^2) noise to every state_dict tensor in key order, drawn from a CPU generator seeded ``seed``
    (the recipe of the golden fixtures of PromptIR, AdaIR and Restormer); returns ``model``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(torch.randn(tensor.shape, generator=generator) * scale)
    return model
