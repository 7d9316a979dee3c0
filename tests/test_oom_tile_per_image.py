"""After a GPU out-of-memory error the engine halves the batch and tiles only a single image that still does not fit,
on its own, in the largest automatic tile size that fits (engine.restore); each image's record says which tile size
it used. The GPU is simulated on the CPU: the forward raises torch.cuda.OutOfMemoryError above a pixel budget."""

from __future__ import annotations

import pytest
import torch

from bench_ir import engine
from bench_ir.engine import EvalOptions, evaluate_task, restore
from bench_ir.geometry import fit_policy, run_tiled

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

CUDA = torch.device("cuda")  # only a label here: it turns on automatic tiling, no tensor goes to a GPU
POLICY = fit_policy(8, "reflect", "none", 1, "none", None)
SIDE = 520  # an image of 270,400 pixels: tiled at 512 px in 4 tiles, at 256 px in 9


class _PixelBudget:
    """A forward that runs out of memory when a batch needs more than ``budget`` pixels; a heavy image (mean above
    0.5) needs two per pixel. Its output depends on the extent of what it is given (x/2 plus each image's mean), so
    outputs tiled at different sizes differ."""

    def __init__(self, budget: float) -> None:
        self.budget = budget

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()  # the engine's forward gives a contiguous copy, a tile is a view: the same sums
        means = x.mean(dim=(1, 2, 3), keepdim=True)
        if float(((means > 0.5) + 1).sum()) * x.shape[-2] * x.shape[-1] > self.budget:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x * 0.5 + means


def _light(count: int) -> torch.Tensor:
    """``count`` images of diagonal ramps from 0 to 0.4, the n-th raised by n/100."""
    ramp = torch.linspace(0, 0.2, SIDE)
    offsets = torch.arange(count).view(-1, 1, 1, 1) / 100
    return (ramp.view(1, 1, SIDE, 1) + ramp.view(1, 1, 1, SIDE) + offsets).expand(count, 3, SIDE, SIDE).contiguous()


def _heavy(count: int) -> torch.Tensor:
    return 0.6 + _light(count)


def test_images_that_fit_only_in_tiles_are_each_tiled_at_the_largest_size_one_image_fits():
    x = _light(2)  # 2 images in 256 px tiles (131,072 px) would fit, as does one in 512 px tiles (262,144 px)
    out, tiling = restore(None, x, POLICY, EvalOptions(device=CUDA, batch_size=2, forward=_PixelBudget(265_000)))
    unlimited = _PixelBudget(float("inf"))
    singles = torch.cat([run_tiled(unlimited, x[i:i + 1], POLICY, 512) for i in range(2)])
    assert tiling == 512
    assert torch.equal(out, singles)


def test_a_batch_restores_when_only_single_image_tiles_fit():
    x = _light(5)  # 5 images in 256 px tiles need 327,680 px, more than the budget
    out, tiling = restore(None, x, POLICY, EvalOptions(device=CUDA, batch_size=5, forward=_PixelBudget(265_000)))
    assert tiling == 512 and out.shape == x.shape


def test_each_image_of_a_batch_is_given_its_own_tile_size():
    x = torch.cat([_light(1), _heavy(1), _light(1)])  # whole: a light image fits, a heavy one only in 256 px tiles
    out, tiling = restore(None, x, POLICY, EvalOptions(device=CUDA, batch_size=3, forward=_PixelBudget(400_000)))
    unlimited = _PixelBudget(float("inf"))
    assert tiling == [None, 256, None]
    assert torch.equal(out[1:2], run_tiled(unlimited, x[1:2], POLICY, 256))
    assert torch.equal(out[::2], unlimited(x[::2]))


def test_an_image_that_does_not_fit_even_in_the_smallest_tiles_raises_out_of_memory():
    with pytest.raises(torch.cuda.OutOfMemoryError):
        restore(None, _light(2), POLICY, EvalOptions(device=CUDA, batch_size=2, forward=_PixelBudget(60_000)))


class _Images(torch.utils.data.Dataset):
    """Three 8x8 images named a, b and c, each its own target."""

    names = ["a", "b", "c"]

    def item_sizes(self) -> list[tuple[int, int]]:
        return [(8, 8)] * 3

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> dict[str, object]:
        image = torch.full((3, 8, 8), index / 4)
        return {"name": self.names[index], "input": image, "target": image}


def test_each_record_carries_the_tile_size_of_its_own_image(monkeypatch):
    monkeypatch.setattr(engine, "restore", lambda model, x, policy, options: (x, [None, 256, 512]))
    ones = torch.ones(3)
    records = evaluate_task(None, "t", _Images(), POLICY, lambda pred, target: {"psnr": ones, "ssim": ones},
                            EvalOptions(device=torch.device("cpu"), batch_size=3))
    assert [record.get("tile") for record in records] == [None, 256, 512]
