"""LPIPS through pyiqa, with weights read only from local files and never downloaded.

No real weights are needed: stand-in files with the real state-dict keys and shapes (random
tensors from the torchvision and pyiqa architectures) are written into a temporary torch hub
folder. Every test runs with sockets disabled and fails if anything tried to reach the network.
"""

from __future__ import annotations

import socket
import sys
from functools import cache
from pathlib import Path

import pytest
import torch

pytest.importorskip("pyiqa", reason="LPIPS needs the optional extra bench-ir[lpips] (pyiqa)")
torchvision = pytest.importorskip("torchvision", reason="LPIPS needs the optional extra bench-ir[lpips] (torchvision)")

from bench_ir.metrics.lpips import (  # noqa: E402
    LPIPSScorer,
    LPIPSWeightsNotFound,
    backbone_filename,
    linear_filename,
    resolve_lpips_weights,
)

CHANNELS = {"alex": [64, 192, 384, 256, 256], "vgg": [64, 128, 256, 512, 512]}
RELU_TAPS = {"alex": [1, 4, 7, 9, 11], "vgg": [3, 8, 15, 22, 29]}  # torchvision feature indices LPIPS reads
TORCHVISION_BUILDERS = {"alex": torchvision.models.alexnet, "vgg": torchvision.models.vgg16}


class NetworkAccessAttempted(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch):
    """Any connection or name lookup is recorded and refused; the test fails if one happened."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object):
        attempts.append(repr(args[:2]))
        raise NetworkAccessAttempted(f"network access attempted: {args[:2]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield
    assert attempts == [], f"network access attempted: {attempts}"


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub folder (TORCH_HOME=<tmp>/torch)."""
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub"


@cache
def standin_backbone(net: str) -> dict[str, torch.Tensor]:
    """torchvision ``features.*`` keys and shapes of the real architecture, filled with random numbers."""
    generator = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        features = TORCHVISION_BUILDERS[net](weights=None).features
    return {
        f"features.{key}": 0.05 * torch.randn(value.shape, generator=generator)
        for key, value in features.state_dict().items()
    }


def backbone_features(net: str) -> torch.nn.Sequential:
    with torch.device("meta"):
        features = TORCHVISION_BUILDERS[net](weights=None).features
    state = {k.removeprefix("features."): v for k, v in standin_backbone(net).items()}
    features.load_state_dict(state, assign=True)
    return features.eval()


@cache
def standin_linear(net: str) -> dict[str, torch.Tensor]:
    """LPIPS linear layers under the lpips/pyiqa key names, random non-negative weights."""
    from pyiqa.archs.lpips_arch import NetLinLayer  # imported under the no-network guard

    torch.manual_seed(1)
    state = {}
    for k, channels in enumerate(CHANNELS[net]):
        layer = NetLinLayer(channels, use_dropout=True)
        torch.nn.init.uniform_(layer.model[1].weight, 0.0, 1.0)
        state.update({f"lin{k}.{key}": value for key, value in layer.state_dict().items()})
    return state


def write_standins(net: str, linear_path: Path | None, backbone_path: Path | None) -> None:
    for path, make_state in ((linear_path, standin_linear), (backbone_path, standin_backbone)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(make_state(net), path)


def install_in_cache(hub: Path, net: str = "alex") -> None:
    write_standins(net, hub / "pyiqa" / linear_filename(net), hub / "checkpoints" / backbone_filename(net))


def reference_lpips(pred: torch.Tensor, target: torch.Tensor, net: str, signed: bool) -> torch.Tensor:
    """LPIPS v0.1 written out from the paper's definition, on the stand-in weights."""
    trunk = backbone_features(net)
    weights = [w.flatten() for w in standin_linear(net).values()]
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def activations(x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x * 2 - 1 if signed else x) - shift) / scale
        taps = []
        for index, layer in enumerate(trunk):
            x = layer(x)
            if index in RELU_TAPS[net]:
                taps.append(x.clone())
        return taps

    total = torch.zeros(pred.shape[0])
    with torch.no_grad():
        for fa, fb, w in zip(activations(pred), activations(target), weights, strict=True):
            na = fa / (fa.square().sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.square().sum(1, keepdim=True).sqrt() + 1e-10)
            total += ((na - nb).square() * w.view(1, -1, 1, 1)).sum(1).mean(dim=(1, 2))
    return total


def image_pair(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    target = torch.rand(2, 3, size, size, generator=generator)
    pred = (target + 0.1 * torch.randn(target.shape, generator=generator)).clamp(0, 1)
    return pred, target


def test_scorer_loads_the_cached_files_into_the_network(hub_dir: Path) -> None:
    install_in_cache(hub_dir)
    scorer = LPIPSScorer("alex")
    assert scorer.files.linear == hub_dir / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth"
    assert scorer.files.backbone == hub_dir / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert torch.equal(scorer.network.net.slice1[0].weight, standin_backbone("alex")["features.0.weight"])
    assert torch.equal(scorer.network.lin4.model[1].weight, standin_linear("alex")["lin4.model.1.weight"])
    assert not scorer.network.training
    assert all(p.device.type == "cpu" for p in scorer.network.parameters())


def test_an_identical_pair_scores_zero(hub_dir: Path) -> None:
    install_in_cache(hub_dir)
    pred, _ = image_pair()
    assert torch.equal(LPIPSScorer("alex")(pred, pred), torch.zeros(2))


@pytest.mark.parametrize("mapping", ["signed", "unit"])
def test_scores_equal_the_lpips_definition_for_each_input_mapping(hub_dir: Path, mapping: str) -> None:
    install_in_cache(hub_dir)
    pred, target = image_pair()
    values = LPIPSScorer("alex", input_mapping=mapping)(pred, target)
    expected = reference_lpips(pred, target, "alex", signed=mapping == "signed")
    assert values.shape == (2,)
    torch.testing.assert_close(values, expected, rtol=1e-5, atol=1e-7)
    assert (values > 0).all()


def test_signed_mapping_is_the_lpips_package_call_on_minus_one_to_one_inputs(hub_dir: Path) -> None:
    """MIRAGE calls lpips.LPIPS(net='alex')(out*2-1, gt*2-1) with the package's normalize=False."""
    install_in_cache(hub_dir)
    pred, target = image_pair()
    scorer = LPIPSScorer("alex")
    with torch.no_grad():
        package_style = scorer.network(pred * 2 - 1, target * 2 - 1, normalize=False).reshape(-1)
    torch.testing.assert_close(scorer(pred, target), package_style, rtol=1e-6, atol=1e-7)


def test_vgg_backbone_loads_from_its_own_files(hub_dir: Path) -> None:
    install_in_cache(hub_dir, "vgg")
    pred, target = image_pair(32)
    scorer = LPIPSScorer("vgg")
    assert scorer.files.backbone.name == "vgg16-397923af.pth"
    assert torch.equal(
        scorer.network.net.slice5.get_submodule("28").weight, standin_backbone("vgg")["features.28.weight"]
    )
    assert torch.equal(scorer(pred, pred), torch.zeros(2))


def test_missing_files_are_each_named_with_the_folder_they_belong_in(hub_dir: Path) -> None:
    with pytest.raises(LPIPSWeightsNotFound) as caught:
        LPIPSScorer("alex")
    message = str(caught.value)
    assert f"LPIPS_v0.1_alex-df73285e.pth (LPIPS v0.1 alex linear layers): put it in {hub_dir / 'pyiqa'}" in message
    assert f"alexnet-owt-7be5be79.pth (torchvision AlexNet ImageNet weights): put it in {hub_dir / 'checkpoints'}" in (
        message
    )
    assert "--lpips-weights" in message
    assert not (hub_dir / "pyiqa").exists()  # nothing was created, let alone downloaded


def test_a_run_with_missing_lpips_weights_fails_before_it_makes_a_run_directory(hub_dir: Path, tmp_path: Path) -> None:
    from bench_ir.runner import RunConfig, run_protocol

    with pytest.raises(LPIPSWeightsNotFound):
        run_protocol(RunConfig(protocol="5deg", sample=True, model="input", limit=1, lpips="default", device="cpu",
                               runs_root=tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()  # it used to leave a 'failed' run with 0 images


def test_only_the_missing_backbone_is_reported_when_the_linear_file_is_present(hub_dir: Path) -> None:
    write_standins("vgg", hub_dir / "pyiqa" / linear_filename("vgg"), None)
    with pytest.raises(LPIPSWeightsNotFound) as caught:
        resolve_lpips_weights("vgg")
    assert "vgg16-397923af.pth" in str(caught.value)
    assert "LPIPS_v0.1_vgg" not in str(caught.value)


def test_an_explicit_linear_file_and_backbone_file_outside_the_cache_are_used(hub_dir: Path, tmp_path: Path) -> None:
    linear, backbone = tmp_path / "mine" / "alex.pth", tmp_path / "mine" / "trunk.pth"
    write_standins("alex", linear, backbone)
    scorer = LPIPSScorer("alex", weights=linear, backbone_weights=backbone)
    assert scorer.files == type(scorer.files)(linear=linear, backbone=backbone)
    assert str(linear) in scorer.describe()


def test_a_weights_folder_may_hold_the_lpips_package_file_and_the_backbone(hub_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "lpips-weights"
    write_standins("alex", folder / "alex.pth", folder / backbone_filename("alex"))
    files = resolve_lpips_weights("alex", weights=folder)
    assert files.linear == folder / "alex.pth"
    assert files.backbone == folder / "alexnet-owt-7be5be79.pth"


def test_an_explicit_weights_path_that_does_not_exist_is_named(hub_dir: Path, tmp_path: Path) -> None:
    install_in_cache(hub_dir)
    wrong = tmp_path / "nowhere" / "alex.pth"
    with pytest.raises(LPIPSWeightsNotFound, match=str(wrong).replace(".", r"\.")):
        resolve_lpips_weights("alex", weights=wrong)


def test_a_file_without_linear_layers_is_rejected_clearly(hub_dir: Path) -> None:
    install_in_cache(hub_dir)
    torch.save({"something.else": torch.zeros(1)}, hub_dir / "pyiqa" / linear_filename("alex"))
    with pytest.raises(ValueError, match="not an LPIPS linear-layer file: no weight for lin0"):
        LPIPSScorer("alex")


def test_without_pyiqa_the_error_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("pyiqa", "pyiqa.archs", "pyiqa.archs.lpips_arch"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r"pip install 'bench-ir\[lpips\]'"):
        linear_filename("alex")
