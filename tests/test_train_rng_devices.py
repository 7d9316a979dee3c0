"""A training checkpoint keeps the CUDA random state of the device the process trains on, so that a process
seeing another number of GPUs resumes it; no GPU needed (torch.cuda is replaced by a recording fake)."""

from __future__ import annotations

import pytest
import torch

from bench_ir.train.checkpointing import capture_rng_state, restore_rng_state


class FakeCuda:
    """The CUDA generators of ``devices`` visible devices: device i's state is ``full(16, i)``."""

    def __init__(self, devices: int, current: int = 0) -> None:
        self.devices, self.current = devices, current
        self.restored: list[tuple[int, torch.Tensor]] = []

    def get_rng_state(self, device: int | str | torch.device = "cuda") -> torch.Tensor:
        return torch.full((16,), self._index(device), dtype=torch.uint8)

    def get_rng_state_all(self) -> list[torch.Tensor]:
        return [self.get_rng_state(i) for i in range(self.devices)]

    def set_rng_state(self, state: torch.Tensor, device: int | str | torch.device = "cuda") -> None:
        self.restored.append((self._index(device), state))

    def set_rng_state_all(self, states: list[torch.Tensor]) -> None:
        for index, state in enumerate(states):
            self.set_rng_state(state, self._index(index))

    def _index(self, device: int | str | torch.device) -> int:
        index = device if isinstance(device, int) else torch.device(device).index
        index = self.current if index is None else index
        if index >= self.devices:
            raise IndexError("tuple index out of range")  # what torch raises for a device it does not see
        return index


@pytest.fixture
def fake_cuda(monkeypatch):
    def install(devices: int, current: int = 0) -> FakeCuda:
        fake = FakeCuda(devices, current)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: fake.current)
        for name in ("get_rng_state", "get_rng_state_all", "set_rng_state", "set_rng_state_all"):
            monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
        return fake

    return install


def test_a_checkpoint_holds_the_cuda_state_of_the_training_device_only(fake_cuda):
    fake_cuda(devices=2)
    state = capture_rng_state(torch.device("cuda", 1))
    assert torch.equal(state["cuda"], torch.full((16,), 1, dtype=torch.uint8))


def test_a_cpu_training_keeps_no_cuda_state(fake_cuda):
    fake_cuda(devices=2)
    assert "cuda" not in capture_rng_state(torch.device("cpu"))


def test_a_process_seeing_one_gpu_resumes_the_state_written_by_a_process_seeing_two(fake_cuda):
    fake_cuda(devices=2)
    state = capture_rng_state(torch.device("cuda"))
    one_gpu = fake_cuda(devices=1)
    assert restore_rng_state(state, torch.device("cuda")) is None
    assert [(index, s.tolist()) for index, s in one_gpu.restored] == [(0, [0] * 16)]


def test_an_old_checkpoint_gives_the_training_device_its_own_entry(fake_cuda):
    state = capture_rng_state(torch.device("cpu"))
    state["cuda"] = [torch.full((16,), i, dtype=torch.uint8) for i in range(3)]  # every visible device's, as before
    fake = fake_cuda(devices=2)
    assert restore_rng_state(state, torch.device("cuda", 1)) is None
    assert [(index, s.tolist()) for index, s in fake.restored] == [(1, [1] * 16)]


def test_an_old_checkpoint_without_an_entry_for_the_training_device_resumes_with_a_notice(fake_cuda):
    state = capture_rng_state(torch.device("cpu"))
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8)]  # written by a process that saw one GPU
    fake = fake_cuda(devices=2)
    notice = restore_rng_state(state, torch.device("cuda", 1))
    assert fake.restored == []
    assert "none for cuda:1" in notice and "random draws on the GPU" in notice
