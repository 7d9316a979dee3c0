"""Checkpoint formats, strict loading diagnostics, safetensors conversion and hashing."""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
import sys
import types
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

from bench_ir.cards import CheckpointSpec, ModelCard, get_card, load_card
from bench_ir.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    convert_checkpoint,
    create_model,
    guess_models,
    load_weights,
    read_checkpoint,
    read_state_dict,
    save_lightning_checkpoint,
    sha256_file,
    sidecar_path,
)
from bench_ir.models.mirage import MIRAGE
from bench_ir.yamlio import SpecError

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

TINY_UNET_CARD = Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml"


class SmallNet(nn.Module):
    """Conv + BatchNorm + Linear: parameters and buffers, small enough to save in milliseconds."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv(x)).mean(dim=(2, 3)))


class NotAWeight:
    """A class a checkpoint must not be allowed to instantiate without trust."""

    def __init__(self, value: int) -> None:
        self.value = value


def _seeded(factory, seed: int):
    torch.manual_seed(seed)
    return factory()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def astronaut_crop() -> torch.Tensor:
    """A 32x32 RGB crop of a real photo in [0, 1], shape (1, 3, 32, 32)."""
    image = data.astronaut()[96:128, 200:232].astype(np.float32) / 255.0
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)


@pytest.fixture(scope="module")
def mirage_t() -> MIRAGE:
    return _seeded(lambda: MIRAGE("tiny"), 0).eval()


@pytest.fixture(scope="module")
def mirage_t_output(mirage_t, astronaut_crop) -> torch.Tensor:
    with torch.no_grad():
        return mirage_t(astronaut_crop)


@pytest.fixture(scope="module")
def mirage_t_ckpt(tmp_path_factory, mirage_t) -> Path:
    return save_lightning_checkpoint(mirage_t, tmp_path_factory.mktemp("ckpt") / "5Deg_tiny.ckpt", epoch=149)


@pytest.fixture(scope="module")
def mirage_s_ckpt(tmp_path_factory) -> Path:
    return save_lightning_checkpoint(_seeded(lambda: MIRAGE("small"), 1),
                                     tmp_path_factory.mktemp("ckpt") / "5Deg_small.ckpt")


@pytest.fixture(scope="module")
def converted(tmp_path_factory, mirage_t_ckpt) -> tuple[Path, dict]:
    """MIRAGE-T's Lightning checkpoint converted to fp32 safetensors: (path, returned sidecar)."""
    out = tmp_path_factory.mktemp("converted") / "mirage-t-5deg.safetensors"
    return out, convert_checkpoint(mirage_t_ckpt, out, get_card("mirage-t"))


# ------------------------------------------------------------------------------------------- formats
def test_lightning_checkpoint_of_mirage_t_round_trips_strictly_with_identical_outputs(
        mirage_t, mirage_t_ckpt, astronaut_crop, mirage_t_output):
    fresh = _seeded(lambda: MIRAGE("tiny"), 123).eval()
    assert not _same_weights(fresh, mirage_t)
    report = load_weights(fresh, mirage_t_ckpt, get_card("mirage-t"))
    assert (report.format, report.tensors, report.loaded, report.strict) == ("lightning", 964, 964, True)
    with torch.no_grad():
        assert torch.equal(fresh(astronaut_crop), mirage_t_output)


def test_lightning_checkpoint_holds_official_layout(mirage_t_ckpt):
    raw = torch.load(mirage_t_ckpt, map_location="cpu", weights_only=True)
    assert raw["epoch"] == 149 and "pytorch-lightning_version" in raw
    assert all(k.startswith("net.") for k in raw["state_dict"])
    assert "net.encoder_level1.0.attn.gatedcnn.norm.running_var" in raw["state_dict"]


def test_create_model_loads_a_checkpoint_path(mirage_t, mirage_t_ckpt):
    assert _same_weights(create_model("mirage-t", checkpoint=mirage_t_ckpt), mirage_t)


def test_plain_state_dict_with_module_prefix_loads(tmp_path):
    source = _seeded(SmallNet, 0)
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "ddp.pth")
    target = _seeded(SmallNet, 1)
    report = load_weights(target, tmp_path / "ddp.pth")
    assert report.format == "state_dict" and _same_weights(target, source)


def test_state_dict_saved_with_optimizer_state_loads(tmp_path):
    source = _seeded(SmallNet, 0)
    optimizer_state = {"state": {0: {"step": torch.tensor(7.0), "exp_avg": torch.zeros(4, 3, 3, 3)}},
                       "param_groups": [{"lr": 1e-3, "params": [0, 1, 2, 3, 4, 5]}]}
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
                "optimizer": optimizer_state, "epoch": 7}, tmp_path / "onerestore.tar")
    target = _seeded(SmallNet, 1)
    assert load_weights(target, tmp_path / "onerestore.tar").format == "state_dict"
    assert _same_weights(target, source)


def test_basicsr_checkpoint_uses_params_before_params_ema(tmp_path):
    params, ema = _seeded(SmallNet, 0), _seeded(SmallNet, 1)
    torch.save({"params": params.state_dict(), "params_ema": ema.state_dict()}, tmp_path / "net_g.pth")
    target = _seeded(SmallNet, 2)
    with pytest.warns(UserWarning, match="loaded 'params'"):
        assert load_weights(target, tmp_path / "net_g.pth").format == "basicsr"
    assert _same_weights(target, params)


def test_basicsr_checkpoint_with_only_params_ema_loads(tmp_path):
    ema = _seeded(SmallNet, 1)
    torch.save({"params_ema": ema.state_dict()}, tmp_path / "net_g_ema.pth")
    target = _seeded(SmallNet, 2)
    load_weights(target, tmp_path / "net_g_ema.pth")
    assert _same_weights(target, ema)


def test_lightning_hyperparameters_of_harmless_types_load_without_trusting_pickle(tmp_path, monkeypatch):
    # Lightning stores save_hyperparameters() as an AttributeDict; fake its module so pickle can name it.
    for package in ("lightning", "lightning.fabric", "lightning.fabric.utilities", "lightning.fabric.utilities.data"):
        monkeypatch.setitem(sys.modules, package, types.ModuleType(package))
    fake_module = sys.modules["lightning.fabric.utilities.data"]
    attribute_dict = type("AttributeDict", (dict,), {"__module__": fake_module.__name__})
    fake_module.AttributeDict = attribute_dict
    source = _seeded(SmallNet, 0)
    torch.save({"state_dict": {f"net.{k}": v for k, v in source.state_dict().items()},
                "pytorch-lightning_version": "2.6.0",
                "hyper_parameters": attribute_dict(opt=argparse.Namespace(lr=2e-4, ckpt_dir=Path("ckpts"))),
                "best_score": np.float64(31.2), "history": np.arange(3)}, tmp_path / "hparams.ckpt")
    target = _seeded(SmallNet, 1)
    assert load_weights(target, tmp_path / "hparams.ckpt").format == "lightning"
    assert _same_weights(target, source)


def test_checkpoint_pickling_arbitrary_objects_is_refused_unless_trusted(tmp_path):
    source = _seeded(SmallNet, 0)
    torch.save({"state_dict": source.state_dict(), "extra": NotAWeight(3)}, tmp_path / "unsafe.pth")
    with pytest.raises(CheckpointError, match=r"unsafe\.pth.*NotAWeight.*trust_pickle=True"):
        read_state_dict(tmp_path / "unsafe.pth")
    assert read_state_dict(tmp_path / "unsafe.pth", trust_pickle=True).keys() == source.state_dict().keys()


# ---------------------------------------------------------------------------------------- conversion
def test_conversion_writes_safetensors_and_provenance_sidecar(converted, mirage_t_ckpt, astronaut_crop,
                                                             mirage_t_output):
    out, info = converted
    sidecar = json.loads(sidecar_path(out).read_text())
    assert sidecar == info
    assert sidecar_path(out).name == "mirage-t-5deg.safetensors.json"
    assert info["model"] == "mirage-t" and info["card_source"].endswith("mirage-t.yaml")
    assert info["source_file"] == "5Deg_tiny.ckpt" and info["source_format"] == "lightning"
    assert info["source_sha256"] == hashlib.sha256(mirage_t_ckpt.read_bytes()).hexdigest()
    assert info["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert (info["tensors"], info["parameters"], info["dtype"]) == (964, 6_207_412, "float32")
    assert {"bench_ir_version", "created"} <= info.keys()
    fresh = _seeded(lambda: MIRAGE("tiny"), 5).eval()
    assert load_weights(fresh, out, get_card("mirage-t")).format == "safetensors"
    with torch.no_grad():
        assert torch.equal(fresh(astronaut_crop), mirage_t_output)


def test_fp16_conversion_halves_the_file_and_keeps_integer_buffers(converted, mirage_t_ckpt, tmp_path):
    full, _ = converted
    half = tmp_path / "fp16.safetensors"
    info = convert_checkpoint(mirage_t_ckpt, half, "mirage-t", dtype="fp16")
    assert info["dtype"] == "float16"
    assert 0.49 < half.stat().st_size / full.stat().st_size < 0.51
    state = read_state_dict(half)
    assert state["encoder_level1.0.attn.gatedcnn.norm.num_batches_tracked"].dtype == torch.int64
    assert state["patch_embed.proj.weight"].dtype == torch.float16


def test_conversion_refuses_a_checkpoint_of_another_model(mirage_s_ckpt, tmp_path):
    with pytest.raises(CheckpointMismatchError, match="mirage-s"):
        convert_checkpoint(mirage_s_ckpt, tmp_path / "wrong.safetensors", "mirage-t")
    assert not (tmp_path / "wrong.safetensors").exists()


def test_conversion_output_must_be_safetensors(mirage_t_ckpt, tmp_path):
    with pytest.raises(ValueError, match=r"\.safetensors"):
        convert_checkpoint(mirage_t_ckpt, tmp_path / "out.pth", "mirage-t")


# ------------------------------------------------------------------------------------------- errors
def test_conversion_refuses_an_existing_output_unless_overwrite(converted, mirage_t_ckpt):
    out, _ = converted
    before = out.read_bytes(), sidecar_path(out).read_bytes()
    with pytest.raises(FileExistsError, match=rf"output {re.escape(str(out))} already exists; pass --overwrite"):
        convert_checkpoint(mirage_t_ckpt, out, "mirage-t", dtype="fp16")
    assert (out.read_bytes(), sidecar_path(out).read_bytes()) == before


def test_conversion_refuses_an_output_whose_sidecar_exists(mirage_t_ckpt, tmp_path):
    out = tmp_path / "w.safetensors"
    sidecar_path(out).write_text("{}")
    with pytest.raises(FileExistsError, match=r"w\.safetensors\.json already exists"):
        convert_checkpoint(mirage_t_ckpt, out, "mirage-t")
    assert not out.exists()


def test_conversion_with_overwrite_replaces_the_output_and_its_sidecar(mirage_t_ckpt, tmp_path):
    out = tmp_path / "w.safetensors"
    convert_checkpoint(mirage_t_ckpt, out, "mirage-t")
    info = convert_checkpoint(mirage_t_ckpt, out, "mirage-t", dtype="fp16", overwrite=True)
    assert info["dtype"] == "float16" and json.loads(sidecar_path(out).read_text())["dtype"] == "float16"
    assert info["output_sha256"] == sha256_file(out)


def _failing_json_write(path, data):
    raise OSError(28, "No space left on device", str(path))


def test_a_failed_sidecar_write_leaves_no_output_without_provenance(mirage_t_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr("bench_ir.checkpoints.write_json_atomic", _failing_json_write)
    out = tmp_path / "w.safetensors"
    with pytest.raises(OSError, match="No space left"):
        convert_checkpoint(mirage_t_ckpt, out, "mirage-t")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_sidecar_write_keeps_the_previous_output_and_sidecar(mirage_t_ckpt, tmp_path, monkeypatch):
    out = tmp_path / "w.safetensors"
    convert_checkpoint(mirage_t_ckpt, out, "mirage-t")
    before = out.read_bytes(), sidecar_path(out).read_bytes()
    monkeypatch.setattr("bench_ir.checkpoints.write_json_atomic", _failing_json_write)
    with pytest.raises(OSError, match="No space left"):
        convert_checkpoint(mirage_t_ckpt, out, "mirage-t", dtype="fp16", overwrite=True)
    assert (out.read_bytes(), sidecar_path(out).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors", "w.safetensors.json"]


def test_wrong_variant_checkpoint_names_shape_mismatches_and_guesses_mirage_s(mirage_s_ckpt):
    with pytest.raises(CheckpointMismatchError) as caught:
        load_weights(MIRAGE("tiny"), mirage_s_ckpt, get_card("mirage-t"))
    message = str(caught.value)
    assert "5Deg_small.ckpt does not fit MIRAGE-T" in message
    assert "27 unexpected" in message and "refinement.2." in message  # S has a third refinement block
    assert "patch_embed.proj.weight checkpoint [30, 3, 3, 3] vs model [24, 3, 3, 3]" in message
    assert "match MIRAGE-S exactly" in message and "--model mirage-s" in message
    assert caught.value.guesses[0].name == "mirage-s" and caught.value.guesses[0].exact


def test_unknown_checkpoint_matches_no_registered_model(tmp_path):
    torch.save(SmallNet().state_dict(), tmp_path / "small.pth")
    with pytest.raises(CheckpointMismatchError, match="matches no registered model"):
        load_weights(MIRAGE("tiny"), tmp_path / "small.pth", get_card("mirage-t"))


def test_guess_ranks_the_matching_variant_first(mirage_s_ckpt):
    shapes = {k: tuple(v.shape) for k, v in read_state_dict(mirage_s_ckpt, get_card("mirage-s").checkpoint).items()}
    guesses = guess_models(shapes)
    assert [g.name for g in guesses[:2]] == ["mirage-s", "mirage-t"]
    assert guesses[0].score == 1.0 and guesses[1].score < 0.5


def test_missing_checkpoint_names_the_file_and_how_to_provide_it(tmp_path):
    missing = tmp_path / "3Deg_tiny.ckpt"
    with pytest.raises(FileNotFoundError) as caught:
        load_weights(MIRAGE("tiny"), missing, get_card("mirage-t"))
    message = str(caught.value)
    assert str(missing) in message and "--checkpoint PATH" in message
    assert "train_ckpt/3deg_tiny/3Deg_tiny.ckpt" in message and "github.com/Amazingren/MIRAGE" in message


def _truncated_checkpoint(path: Path) -> None:
    torch.save(SmallNet().state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("name", "write", "explanation"),
    [
        ("truncated.ckpt", _truncated_checkpoint, "zip archive that is truncated"),
        ("random.pth", lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), "match no checkpoint"),
        ("config.pth", lambda p: p.write_text(json.dumps({"model": "mirage-t"})), "looks like JSON"),
        ("list.pkl", lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), "raw Python pickle"),
        ("empty.ckpt", lambda p: p.write_bytes(b""), "empty"),
    ],
)
def test_corrupt_or_foreign_file_gives_a_checkpoint_error(tmp_path, name, write, explanation):
    path = tmp_path / name
    write(path)
    with pytest.raises(CheckpointError) as caught:
        read_state_dict(path)
    message = str(caught.value)
    assert str(path) in message and explanation in message and "Expected a PyTorch checkpoint" in message
    assert "weights_only" not in message  # torch's advice for a pickle it refuses names the wrong cause here


@pytest.mark.parametrize(
    ("name", "write", "explanation"),
    [
        ("empty.ckpt", lambda p: p.write_bytes(b""), "the file is empty"),
        ("truncated.ckpt", _truncated_checkpoint, "zip archive that is truncated"),
        ("list.pkl", lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), "raw Python pickle"),
    ],
)
def test_a_file_that_is_no_checkpoint_gives_the_same_checkpoint_error_when_pickle_is_trusted(tmp_path, name, write,
                                                                                          explanation):
    path = tmp_path / name
    write(path)
    with pytest.raises(CheckpointError) as caught:
        read_state_dict(path, trust_pickle=True)
    message = str(caught.value)
    assert message.startswith(f"cannot read checkpoint {path}: ") and explanation in message
    assert "Expected a PyTorch checkpoint" in message and "\n" not in message


def test_a_trusted_checkpoint_whose_objects_fail_to_unpickle_names_the_file(tmp_path, monkeypatch):
    module = types.ModuleType("vanishing_module")
    monkeypatch.setitem(sys.modules, "vanishing_module", module)
    thing = type("Thing", (), {"__module__": "vanishing_module"})
    module.Thing = thing
    torch.save({"state_dict": SmallNet().state_dict(), "config": thing()}, tmp_path / "objects.ckpt")
    monkeypatch.delitem(sys.modules, "vanishing_module")
    with pytest.raises(CheckpointError, match=r"cannot unpickle checkpoint .*objects\.ckpt \(--trust-pickle\): "
                                              r"ModuleNotFoundError: No module named 'vanishing_module'"):
        read_state_dict(tmp_path / "objects.ckpt", trust_pickle=True)


def test_torch_file_without_tensors_says_what_was_expected(tmp_path):
    torch.save({"epoch": 3, "config": {"dim": 24}}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match=r"meta\.pth holds no state_dict: top-level keys are 'epoch', 'config'"):
        read_state_dict(tmp_path / "meta.pth")


def test_truncated_safetensors_gives_a_checkpoint_error(converted, tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(converted[0].read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors.*truncated"):
        read_state_dict(cut)


def test_non_strict_load_reports_differences_and_loads_the_rest(tmp_path):
    source = _seeded(SmallNet, 0)
    state = source.state_dict()
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["conv.weight"] = torch.zeros(5, 3, 3, 3)
    torch.save(state, tmp_path / "partial.pth")
    target = _seeded(SmallNet, 1)
    before = target.state_dict()
    with pytest.warns(UserWarning, match="non-strict load"):
        report = load_weights(target, tmp_path / "partial.pth", strict=False)
    assert report.mismatch.missing == ["head.bias"] and report.mismatch.unexpected == ["extra.weight"]
    assert report.mismatch.mismatched == [("conv.weight", (5, 3, 3, 3), (4, 3, 3, 3))]
    after = target.state_dict()
    assert torch.equal(after["head.weight"], source.state_dict()["head.weight"])
    assert torch.equal(after["conv.weight"], before["conv.weight"])
    assert torch.equal(after["head.bias"], before["head.bias"])
    assert report.loaded == len(before) - 2


def test_strict_load_of_partial_checkpoint_raises(tmp_path):
    state = SmallNet().state_dict()
    del state["head.bias"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointMismatchError, match=r"1 missing.*\n  missing .*head\.bias"):
        load_weights(SmallNet(), tmp_path / "partial.pth")


# ------------------------------------------------------------------------------------------- hashing
def test_sha256_is_streamed_and_matches_hashlib(tmp_path):
    payload = np.random.default_rng(1).bytes(10_000)
    (tmp_path / "blob.bin").write_bytes(payload)
    assert sha256_file(tmp_path / "blob.bin", chunk_bytes=999) == hashlib.sha256(payload).hexdigest()


def test_safetensors_file_is_recognised_without_its_suffix(converted, tmp_path):
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(converted[0].read_bytes())
    assert read_checkpoint(renamed).format == "safetensors"


def test_a_training_checkpoint_loads_for_a_card_whose_release_is_safetensors(tmp_path):
    """The content decides the format: `run --checkpoint <training run>/checkpoints/last.pt` scores a model whose
    card says `format: safetensors` (it failed with 'cannot read safetensors file ... header too large')."""
    from conftest import FAST_TRAINING

    from bench_ir.checkpoints import create_model
    from bench_ir.train.trainer import train

    card_path = Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml"
    assert get_card(str(card_path)).checkpoint.format == "safetensors"
    outcome = train("sample", str(card_path), None, tmp_path / "run", max_steps=1,
                    **{**FAST_TRAINING, "model_args": {}})
    from_checkpoint = create_model(get_card(str(card_path)), checkpoint=tmp_path / "run/checkpoints/last.pt")
    trained = outcome.model.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in from_checkpoint.state_dict().items())


def test_a_folder_given_as_checkpoint_names_the_checkpoint_files_in_it(tmp_path):
    from bench_ir.checkpoints import CheckpointError, read_checkpoint

    (tmp_path / "checkpoints").mkdir()
    for name in ("final.safetensors", "checkpoints/last.pt", "train_log.csv"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(CheckpointError, match=rf"is a directory; pass the checkpoint file itself, e.g. one of: "
                                              rf"{tmp_path}/checkpoints/last.pt, {tmp_path}/final.safetensors$"):
        read_checkpoint(tmp_path)


# ---------------------------------------------------------------------------- weight sets and key prefixes
def _small_card(**checkpoint) -> ModelCard:
    """A card for SmallNet (load_weights reads only its names and checkpoint section)."""
    return ModelCard(name="small-net", display_name="SmallNet", factory="unused:SmallNet",
                     checkpoint=CheckpointSpec(**checkpoint))


def test_card_key_chooses_the_weight_set_of_a_file_holding_several(tmp_path):
    params, ema = _seeded(SmallNet, 0), _seeded(SmallNet, 1)
    torch.save({"params": params.state_dict(), "params_ema": ema.state_dict()}, tmp_path / "net_g.pth")
    target = _seeded(SmallNet, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the card chose: nothing to warn about
        report = load_weights(target, tmp_path / "net_g.pth", _small_card(key="params_ema"))
    assert report.format == "basicsr" and _same_weights(target, ema)
    assert read_checkpoint(tmp_path / "net_g.pth", CheckpointSpec(key="params_ema")).key == "params_ema"


@pytest.mark.parametrize(("sets", "used", "other"), [
    (("params", "params_ema"), "params", "params_ema"),
    (("state_dict", "params"), "state_dict", "params"),
    (("state_dict", "state_dict_ema"), "state_dict", "state_dict_ema"),
])
def test_a_file_with_several_weight_sets_and_no_card_key_warns_which_one_it_loaded(tmp_path, sets, used, other):
    nets = {name: _seeded(SmallNet, seed) for seed, name in enumerate(sets)}
    torch.save({name: net.state_dict() for name, net in nets.items()}, tmp_path / "several.pth")
    target = _seeded(SmallNet, 9)
    listed = ", ".join(f"'{name}'" for name in sets)
    with pytest.warns(UserWarning, match=re.escape(f"several.pth holds 2 weight sets ({listed}); loaded '{used}'. To "
                                                   f"load another, name it in the model card: `checkpoint: "
                                                   f"{{key: {other}}}`")):
        load_weights(target, tmp_path / "several.pth")
    assert _same_weights(target, nets[used])


def test_a_file_with_one_weight_set_loads_without_a_warning(tmp_path):
    source = _seeded(SmallNet, 0)
    torch.save({"state_dict": source.state_dict(), "optimizer": {"state": {}, "param_groups": []}, "epoch": 3},
               tmp_path / "one.ckpt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_weights(_seeded(SmallNet, 1), tmp_path / "one.ckpt")


def test_a_card_key_the_file_lacks_is_an_error_naming_the_weight_sets_it_holds(tmp_path):
    torch.save({"params": SmallNet().state_dict(), "iter": 7}, tmp_path / "net_g.pth")
    with pytest.raises(CheckpointError, match=r"net_g\.pth has no entry 'params_ema' \(the card's checkpoint\.key\): "
                                              r"its weight sets are 'params'"):
        load_weights(SmallNet(), tmp_path / "net_g.pth", _small_card(key="params_ema"))


@pytest.mark.parametrize(("checkpoint", "error"), [
    ("{key: params_ema}", None),
    ("{key: ''}", "field 'checkpoint': field 'key': must name the entry"),
    ("{key: 3}", "field 'checkpoint': field 'key': expected"),
    ("{format: safetensors, key: params_ema}", "a safetensors file holds a single set of weights"),
])
def test_the_card_key_is_checked_when_the_card_is_read(tmp_path, checkpoint, error):
    card_file = tmp_path / "net.yaml"
    card_file.write_text(f"name: net\ndisplay_name: Net\nfactory: net:Net\ncheckpoint: {checkpoint}\n")
    if error is None:
        assert load_card(card_file).checkpoint.key == "params_ema"
    else:
        with pytest.raises(SpecError, match=re.escape(f"{card_file}: ") + ".*" + re.escape(error)):
            load_card(card_file)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod."])
def test_a_card_prefix_behind_an_automatic_prefix_is_removed_too(tmp_path, prefix):
    """`module.model.conv.weight` with `strip_prefixes: ["model."]` is `conv.weight`: the automatic DDP/compile
    prefix no longer hides the card's."""
    source = _seeded(SmallNet, 0)
    torch.save({f"{prefix}model.{k}": v for k, v in source.state_dict().items()}, tmp_path / "wrapped.pth")
    target = _seeded(SmallNet, 1)
    load_weights(target, tmp_path / "wrapped.pth", _small_card(strip_prefixes=["model."]))
    assert _same_weights(target, source)


@pytest.mark.parametrize(("stored", "prefixes", "loaded"), [
    ("net.conv.weight", ["net."], "conv.weight"),                      # Lightning
    ("module.conv.weight", ["module."], "conv.weight"),                # a card naming DDP's prefix itself
    ("module.module.conv.weight", ["module."], "conv.weight"),
    ("module.net.conv.weight", ["module.net."], "conv.weight"),        # a card prefix spanning the automatic one
    ("net.net.conv.weight", ["net."], "net.conv.weight"),              # a card prefix is removed once per key
    ("_orig_mod.model.conv.weight", [], "model.conv.weight"),          # no card prefix: only the automatic ones
])
def test_key_prefixes_are_removed_as_before_for_existing_cards(tmp_path, stored, prefixes, loaded):
    torch.save({stored: torch.zeros(1)}, tmp_path / "one.pth")
    assert list(read_state_dict(tmp_path / "one.pth", CheckpointSpec(strip_prefixes=prefixes))) == [loaded]


@pytest.mark.parametrize("prefix", ["model.", "net.", "generator."])
def test_keys_behind_one_common_prefix_get_the_strip_prefixes_to_put_in_the_card(tmp_path, prefix):
    source = _seeded(SmallNet, 0)
    torch.save({f"{prefix}{k}": v for k, v in source.state_dict().items()}, tmp_path / "prefixed.pth")
    with pytest.raises(CheckpointMismatchError) as caught:
        load_weights(SmallNet(), tmp_path / "prefixed.pth", _small_card())
    message = str(caught.value)
    assert f"unexpected (checkpoint keys the model lacks): {prefix}conv.weight" in message
    assert message.endswith(f"Removing the prefix '{prefix}' from its keys makes them fit: put "
                            f'`checkpoint: {{strip_prefixes: ["{prefix}"]}}` in the model card.')
    assert "matches no registered model" not in message
    target = _seeded(SmallNet, 1)  # the advice works
    load_weights(target, tmp_path / "prefixed.pth", _small_card(strip_prefixes=[prefix]))
    assert _same_weights(target, source)


def test_the_prefix_advice_keeps_the_cards_own_prefixes_and_flags_leftover_keys(tmp_path):
    state = {f"net.generator.{k}": v for k, v in SmallNet().state_dict().items()}
    state["net.discriminator.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "gan.pth")
    with pytest.raises(CheckpointMismatchError, match=re.escape(
            "Removing the prefix 'generator.' from its keys finds every tensor of the model (1 checkpoint keys stay "
            'unused): put `checkpoint: {strip_prefixes: ["net.", "generator."], strict: false}` in the model card.')):
        load_weights(SmallNet(), tmp_path / "gan.pth", _small_card(strip_prefixes=["net."]))


def test_a_non_strict_card_whose_checkpoint_matches_no_tensor_is_an_error_not_a_silent_random_model(tmp_path):
    """`strict: false` loads what matches; a file matching nothing would leave the random initialisation scored
    as if it were the checkpoint's weights."""
    card = get_card(str(TINY_UNET_CARD))
    card = replace(card, checkpoint=replace(card.checkpoint, format="state_dict", strict=False))
    weights = create_model(card).state_dict()
    torch.save({f"model.{k}": v for k, v in weights.items()}, tmp_path / "prefixed.pth")
    with pytest.raises(CheckpointMismatchError) as caught:
        create_model(card, checkpoint=tmp_path / "prefixed.pth")
    message = str(caught.value)
    assert message.startswith("non-strict load (checkpoint.strict: false): no tensor of the checkpoint matches any "
                              f"of the {len(weights)} tensors of TinyUNet (example) (tiny-unet)")
    assert f"checkpoint {tmp_path / 'prefixed.pth'} does not fit" in message
    assert "unexpected (checkpoint keys the model lacks): model.embed.weight, model.embed.bias" in message
    assert '`checkpoint: {strip_prefixes: ["model."]}`' in message


def test_a_non_strict_load_matching_some_tensors_still_loads_them_with_a_warning(tmp_path):
    source = _seeded(SmallNet, 0)
    state = {k: v for k, v in source.state_dict().items() if k.startswith("head.")}
    state.update({f"model.{k}": v for k, v in source.state_dict().items() if not k.startswith("head.")})
    torch.save(state, tmp_path / "half.pth")
    target = _seeded(SmallNet, 1)
    with pytest.warns(UserWarning, match="non-strict load"):
        report = load_weights(target, tmp_path / "half.pth", strict=False)
    assert report.loaded == 2 and torch.equal(target.head.weight, source.head.weight)
