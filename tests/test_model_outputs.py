"""What a model's forward must return, and what bench-ir does with an output it cannot score: an image of another
size than the model's input is an error even where padding or tiling would crop it to size, a dict is an error that
says what was returned, and a model that writes into its input changes nothing of the result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench_ir.data.sample import load_sample_photo
from bench_ir.engine import EvalOptions, restore, restored_image
from bench_ir.folder_restore import RestoreConfig, restore_folder
from bench_ir.geometry import FitPolicy
from bench_ir.runner import RunConfig, run_protocol


class DoublingNet(nn.Module):
    """Returns its input upsampled 2x: a larger output than its input."""

    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")


class ZeroingIdentity(nn.Module):
    """The identity, but it zeroes the tensor it was given (a model that works in place on its input)."""

    def forward(self, x):
        out = x.clone()
        x.zero_()
        return out


class HolesNet(nn.Module):
    """The identity with a NaN in the first row and +Inf in the second (of every channel)."""

    def forward(self, x):
        out = x.clone()
        out[..., 0, :] = float("nan")
        out[..., 1, :] = float("inf")
        return out


class HalfNet(nn.Module):
    """A 1x1 convolution kept in half precision."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1).half()

    def forward(self, x):
        return self.conv(x)


class DictNet(nn.Module):
    def forward(self, x):
        return {"image": x, "aux": x.mean()}


def _card(folder: Path, name: str, factory: str, extra: str = "") -> Path:
    card = folder / f"{name}.yaml"
    card.write_text(f"name: {name}\ndisplay_name: {name}\nfactory: {__name__}:{factory}\nexpected_params: 0\n{extra}")
    return card


@pytest.mark.parametrize("fitting", [{"extra": "input_multiple: 16\npad_mode: reflect\n"}, {"tile": 64}])
def test_a_larger_output_is_an_error_where_padding_or_tiling_would_crop_it_to_size(tmp_path, monkeypatch, fitting):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    card = _card(tmp_path, "doubling", "DoublingNet", fitting.get("extra", ""))
    config = RunConfig(protocol="derain", model=str(card), sample=True, run_dir=tmp_path / "r", limit=1,
                       tile=fitting.get("tile"), tile_overlap=16)
    with pytest.raises(RuntimeError, match=r"derain/.*: model 'doubling' .* returned output shape \(1, 3, 128, 128\) "
                       r"for input \(1, 3, 64, 64\) \(the image as padded or tiled for the model\)" if "tile" in fitting
                       else r"derain/.*: model 'doubling' .* returned output shape \(1, 3, 384, 384\) for input "
                       r"\(1, 3, 192, 192\) \(a restoration model must return an image of its input's size\)"):
        run_protocol(config)


def test_restore_refuses_a_larger_output_naming_the_image_and_writes_no_png(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    card = _card(tmp_path, "doubling", "DoublingNet", "input_multiple: 16\npad_mode: reflect\n")
    (tmp_path / "in").mkdir()
    Image.fromarray(load_sample_photo("chelsea")[:96, :96]).save(tmp_path / "in" / "cat.png")
    with pytest.raises(RuntimeError, match=r"cat.png: model 'doubling' .* returned output shape \(1, 3, 192, 192\)"):
        restore_folder(RestoreConfig(input_dir=tmp_path / "in", out_dir=tmp_path / "out", model=str(card),
                                     device="cpu"))
    assert not (tmp_path / "out" / "cat.png").exists()


def test_a_model_that_zeroes_its_input_in_place_still_gives_its_output_in_every_overlapping_tile():
    photo = torch.from_numpy(load_sample_photo("astronaut")[:160, :200].copy()).permute(2, 0, 1)[None].float() / 255
    x = photo.clone()
    out, _ = restore(ZeroingIdentity(), x, FitPolicy(multiple=1, pad_mode="reflect"),
                     EvalOptions(device=torch.device("cpu"), tile=64, tile_overlap=16))
    torch.testing.assert_close(out, photo, rtol=0, atol=1e-6)
    assert torch.equal(x, photo)  # the batch (saved as _input by --save-images) is untouched


def test_a_forward_returning_a_dict_is_an_error_that_names_its_keys():
    with pytest.raises(TypeError, match=r"the model's forward returned a dict with keys \['aux', 'image'\]; bench-ir "
                       r"takes the restored image as a tensor \(B,3,H,W\), or as the first element of a tuple or list"):
        restored_image(DictNet()(torch.rand(1, 3, 8, 8)))


def test_a_tuple_output_is_scored_by_its_first_element():
    image = torch.rand(1, 3, 8, 8)
    assert restored_image((image, torch.zeros(1))) is image


def test_the_run_of_a_model_that_zeroes_its_input_saves_the_true_input_image(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    card = _card(tmp_path, "zeroing", "ZeroingIdentity")
    outcome = run_protocol(RunConfig(protocol="derain", model=str(card), sample=True, run_dir=tmp_path / "r", limit=1,
                                     save_images=True))
    saved = sorted((outcome.run_dir / "images").rglob("*.png"))
    inputs = [path for path in saved if "_input" in path.parts]
    assert inputs and all(np.asarray(Image.open(path)).max() > 0 for path in inputs), saved


def test_restore_writes_nan_as_black_and_inf_as_white_and_says_which_outputs_had_them(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    card = _card(tmp_path, "holes", "HolesNet")
    (tmp_path / "in").mkdir()
    photo = load_sample_photo("coffee")[:32, :48]
    Image.fromarray(photo).save(tmp_path / "in" / "cup.png")
    outcome = restore_folder(RestoreConfig(input_dir=tmp_path / "in", out_dir=tmp_path / "out", model=str(card),
                                           device="cpu"))
    written = np.asarray(Image.open(tmp_path / "out" / "cup.png"))
    assert (written[0] == 0).all() and (written[1] == 255).all()
    np.testing.assert_array_equal(written[2:], photo[2:])
    assert outcome.nonfinite == {"cup.png": 2 * 48 * 3}
    assert any("NaN/Inf values for 1 image(s) (cup.png)" in notice for notice in outcome.notices)
    assert json.loads((tmp_path / "out" / "restore.json").read_text())["nonfinite"] == {"cup.png": 288}


def test_a_half_precision_model_under_fp32_is_refused_with_the_dtype_that_runs_it(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    card = _card(tmp_path, "half", "HalfNet")
    with pytest.raises(ValueError, match=r"model 'half' has float16 parameters, but images go in as float32 "
                       r"\(--dtype fp32\): run with --dtype fp16 \(autocast\)"):
        run_protocol(RunConfig(protocol="derain", model=str(card), sample=True, run_dir=tmp_path / "r", limit=1))
    assert not (tmp_path / "r").exists()
