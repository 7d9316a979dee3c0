"""LPIPS v0.1 (Zhang et al. 2018) through pyiqa's network, reading weights from local files only.

pyiqa is an optional extra (``pip install 'bench-ir[lpips]'``) and is imported when a scorer is
built. Two files are needed per backbone, and neither is ever downloaded:

* the LPIPS linear layers -- pyiqa's ``LPIPS_v0.1_alex-df73285e.pth`` / ``LPIPS_v0.1_vgg-a78928a0.pth``
  (pyiqa looks for them in ``<torch hub dir>/pyiqa/``), or the ``lpips`` package's
  ``weights/v0.1/alex.pth`` / ``vgg.pth`` (same tensors) given by path;
* the torchvision ImageNet backbone -- ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` in
  ``<torch hub dir>/checkpoints/`` (where torchvision caches it).

``<torch hub dir>`` is ``torch.hub.get_dir()``: ``$TORCH_HOME/hub``, by default
``~/.cache/torch/hub``. An explicit ``weights`` path (the CLI's ``--lpips-weights``) may name the
linear-layer file or a folder holding the files. pyiqa's own constructor would fetch missing files
from the network (torchvision's backbone weights always), so the network is built from pyiqa's
classes with the torchvision architecture only, and both state dicts are loaded here.

Input convention: images in [0, 1]. ``input_mapping="signed"`` maps them to [-1, 1] by ``x*2-1``
before the network -- MIRAGE's call of ``lpips.LPIPS(net='alex')`` and torchmetrics'
``normalize=True``; pyiqa's ``normalize=True`` flag does exactly this mapping. ``"unit"`` feeds the
[0, 1] values unchanged, as DiffUIR's ``lpips.LPIPS(net='vgg')`` call does. Lower is better.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Literal
from unittest import mock

import torch
from torch import nn

__all__ = [
    "LPIPSScorer",
    "LPIPSWeightsNotFound",
    "LpipsWeightFiles",
    "backbone_filename",
    "build_lpips_network",
    "linear_filename",
    "pyiqa_cache_dir",
    "resolve_lpips_weights",
    "torchvision_cache_dir",
]

Net = Literal["alex", "vgg"]
InputMapping = Literal["signed", "unit"]

INSTALL_HINT = "LPIPS needs the optional dependency pyiqa: pip install 'bench-ir[lpips]'"
_BACKBONES = {"alex": ("alexnet", "AlexNet_Weights", "AlexNet"), "vgg": ("vgg16", "VGG16_Weights", "VGG16")}


class LPIPSWeightsNotFound(FileNotFoundError):
    """A weight file LPIPS needs is not on this machine (bench-ir never downloads it)."""


@dataclass(frozen=True)
class LpipsWeightFiles:
    """Local files that make up one LPIPS network."""

    linear: Path
    backbone: Path


def _import_lpips_arch() -> ModuleType:
    try:
        from pyiqa.archs import lpips_arch
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return lpips_arch


def _check_net(net: str) -> None:
    if net not in _BACKBONES:
        raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")


def _linear_url(net: Net) -> str:
    return _import_lpips_arch().default_model_urls[f"0.1_{net}"]


def _backbone_url(net: Net) -> str:
    import torchvision

    return getattr(torchvision.models, _BACKBONES[net][1]).IMAGENET1K_V1.url


def linear_filename(net: Net) -> str:
    """pyiqa's file name for the LPIPS v0.1 linear layers, e.g. ``LPIPS_v0.1_alex-df73285e.pth``."""
    _check_net(net)
    return _linear_url(net).rsplit("/", 1)[-1]


def backbone_filename(net: Net) -> str:
    """torchvision's file name for the ImageNet backbone, e.g. ``alexnet-owt-7be5be79.pth``."""
    _check_net(net)
    return _backbone_url(net).rsplit("/", 1)[-1]


def pyiqa_cache_dir() -> Path:
    """Where pyiqa keeps its weights: ``<torch hub dir>/pyiqa``."""
    return Path(torch.hub.get_dir()) / "pyiqa"


def torchvision_cache_dir() -> Path:
    """Where torchvision keeps backbone weights: ``<torch hub dir>/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_lpips_weights(
    net: Net = "alex",
    weights: str | Path | None = None,
    backbone_weights: str | Path | None = None,
) -> LpipsWeightFiles:
    """Find the two weight files of LPIPS-``net`` on disk; never touches the network.

    ``weights``: the linear-layer file, or a folder searched for pyiqa's file name (then the
    ``lpips`` package's ``<net>.pth``) and for the backbone file. Without it the linear layers come
    from :func:`pyiqa_cache_dir`. ``backbone_weights``: an explicit torchvision backbone file;
    otherwise the ``weights`` folder, then :func:`torchvision_cache_dir`.
    Raises :class:`LPIPSWeightsNotFound` naming every missing file and where to put it.
    """
    _check_net(net)
    linear_name, backbone_name = linear_filename(net), backbone_filename(net)
    given = Path(weights).expanduser() if weights is not None else None
    folder = given if given is not None and given.is_dir() else None
    missing: list[str] = []

    linear: Path | None
    if given is not None and folder is None:
        linear = given if given.is_file() else None
        if linear is None:
            missing.append(f"{given} (LPIPS v0.1 {net} linear layers, given with --lpips-weights) does not exist")
    else:
        search = folder if folder is not None else pyiqa_cache_dir()
        names = (linear_name, f"{net}.pth") if folder is not None else (linear_name,)
        linear = next((search / name for name in names if (search / name).is_file()), None)
        if linear is None:
            also = f" (or the lpips package's {net}.pth)" if folder is not None else ""
            missing.append(
                f"{linear_name}{also} (LPIPS v0.1 {net} linear layers): put it in {search} or pass its path "
                f"with --lpips-weights; published at {_linear_url(net)}"
            )

    if backbone_weights is not None:
        candidates = [Path(backbone_weights).expanduser()]
    else:
        candidates = [d / backbone_name for d in ([folder] if folder is not None else []) + [torchvision_cache_dir()]]
    backbone = next((p for p in candidates if p.is_file()), None)
    if backbone is None:
        architecture = _BACKBONES[net][2]
        if backbone_weights is not None:
            missing.append(f"{candidates[0]} (torchvision {architecture} ImageNet weights) does not exist")
        else:
            where = f"{torchvision_cache_dir()}" + (f" or {folder}" if folder is not None else "")
            missing.append(
                f"{backbone_name} (torchvision {architecture} ImageNet weights): put it in {where}; "
                f"published at {_backbone_url(net)}"
            )

    if missing:
        lines = "\n".join(f"  - {m}" for m in missing)
        raise LPIPSWeightsNotFound(
            f"LPIPS-{net} weight files are missing (bench-ir never downloads weights):\n{lines}\n"
            f"The torch hub folder is {torch.hub.get_dir()} (set TORCH_HOME to move it)."
        )
    assert linear is not None and backbone is not None
    return LpipsWeightFiles(linear=linear, backbone=backbone)


@contextmanager
def _torchvision_architecture_only(lpips_arch: ModuleType) -> Iterator[None]:
    """Make pyiqa's backbone classes build the torchvision network without any weights.

    pyiqa's ``alexnet``/``vgg16`` wrappers call ``models.alexnet(weights='IMAGENET1K_V1')``, which
    downloads when the file is not cached. Here they get the bare architecture on the meta device
    (no memory, no init); its parameters are replaced by :func:`_load_backbone`.
    """
    import torchvision

    def bare(builder_name: str):
        def build(*args: object, **kwargs: object) -> nn.Module:
            with torch.device("meta"):
                return getattr(torchvision.models, builder_name)(weights=None)

        return build

    shim = SimpleNamespace(alexnet=bare("alexnet"), vgg16=bare("vgg16"))
    with mock.patch.object(lpips_arch, "models", shim):
        yield


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file gets the same clear message
        raise ValueError(f"cannot read LPIPS weights from {path}: {err}") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _load_backbone(trunk: nn.Module, path: Path) -> None:
    """Copy torchvision ``features.<i>.*`` tensors into pyiqa's ``slice<k>.<i>.*`` layers."""
    source = _load_state_dict(path)
    mapped: dict[str, torch.Tensor] = {}
    absent: list[str] = []
    for name in trunk.state_dict():
        layer_and_param = name.split(".", 1)[1]  # 'slice1.0.weight' -> '0.weight'
        key = f"features.{layer_and_param}"
        if key in source:
            mapped[name] = source[key]
        else:
            absent.append(key)
    if absent:
        raise ValueError(f"{path} is not a torchvision backbone checkpoint for LPIPS: it lacks {', '.join(absent)}")
    trunk.load_state_dict(mapped, strict=True, assign=True)


def _load_linear_layers(lins: nn.ModuleList, path: Path) -> None:
    """Load ``lin<k>`` 1x1-conv weights (pyiqa or ``lpips`` package key names) into ``lins``."""
    source = _load_state_dict(path)
    for k, layer in enumerate(lins):
        pattern = re.compile(rf"^lins?\.?{k}\.model\.\d+\.weight$")
        keys = [key for key in source if pattern.match(key)]
        if not keys:
            raise ValueError(f"{path} is not an LPIPS linear-layer file: no weight for lin{k}")
        target_name = next(name for name, _ in layer.named_parameters())
        layer.load_state_dict({target_name: source[keys[0]]}, strict=True)


def build_lpips_network(net: Net, files: LpipsWeightFiles) -> nn.Module:
    """pyiqa's ``LPIPS`` module (v0.1, eval mode, frozen) with weights from ``files`` only."""
    lpips_arch = _import_lpips_arch()
    with _torchvision_architecture_only(lpips_arch):
        model = lpips_arch.LPIPS(net=net, version="0.1", pretrained=False, pretrained_model_path=None)
    _load_backbone(model.net, files.backbone)
    _load_linear_layers(model.lins, files.linear)
    model.requires_grad_(False)
    return model.eval()


class LPIPSScorer:
    """LPIPS per image ``(B,)`` for ``(B, 3, H, W)`` images in [0, 1]; lower is better.

    ``net``: "alex" (MIRAGE) or "vgg" (DiffUIR, MoCE-IR). ``weights``: the linear-layer file or a
    folder with the weight files (default: the torch hub caches, see the module docstring).
    ``input_mapping``: "signed" (x*2-1, the ``lpips`` package convention) or "unit" (raw [0, 1]).
    """

    def __init__(
        self,
        net: Net = "alex",
        weights: str | Path | None = None,
        device: str | torch.device = "cpu",
        input_mapping: InputMapping = "signed",
        backbone_weights: str | Path | None = None,
    ) -> None:
        if input_mapping not in ("signed", "unit"):
            raise ValueError(f"input_mapping must be 'signed' or 'unit', got {input_mapping!r}")
        self.net = net
        self.input_mapping = input_mapping
        self.device = torch.device(device)
        self.files = resolve_lpips_weights(net, weights, backbone_weights)
        self.network = build_lpips_network(net, self.files).to(self.device)

    def describe(self) -> str:
        mapping = "inputs mapped x*2-1" if self.input_mapping == "signed" else "raw [0,1] inputs"
        return (
            f"LPIPS v0.1 {'AlexNet' if self.net == 'alex' else 'VGG16'} (pyiqa network, {mapping}); "
            f"weights {self.files.linear} + {self.files.backbone}"
        )

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"expected two (B, 3, H, W) tensors, got {tuple(pred.shape)} and {tuple(target.shape)}")
        pred = pred.to(self.device, torch.float32)
        target = target.to(self.device, torch.float32)
        with torch.inference_mode():
            distance = self.network(pred, target, normalize=self.input_mapping == "signed")
        return distance.reshape(-1)
