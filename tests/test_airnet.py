"""AirNet: official parameter counts and state_dict layout, the eval path (only the query encoder's stem
conditions the restorer), the MoCo training step, the degradation-guided deformable layer, loading of an
official-format plain state_dict, and the size rule (any size; the protocol crops to a multiple of 16).

Parity with the official classes (XLearning-SCU/2022-CVPR-AirNet @bedea82, mmcv's op replaced by the
reference DCN) was measured outside the repository: see the ``parity`` field of registry/airnet.yaml.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from bench_ir.cards import count_parameters, get_card
from bench_ir.checkpoints import CheckpointMismatchError, create_model
from bench_ir.models.airnet import AirNet, AirNetTrainingOutput, DegradationGuidedDeformConv, MomentumContrast
from bench_ir.models.deform_conv import torchvision_available
from bench_ir.profiling import inference_parameter_count

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

OFFICIAL_PARAMS = 8_930_313
OFFICIAL_RESTORER_PARAMS = 6_290_441
OFFICIAL_ENCODER_PARAMS = 1_319_936
OFFICIAL_KEYS = 584


def photo(height: int, width: int, batch: int = 1) -> torch.Tensor:
    """Area-downscaled crops of scikit-image's astronaut photo, RGB in [0, 1]."""
    image = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1).float() / 255
    crops = [image[:, 64 * i:64 * i + 256, 96:352] for i in range(batch)]
    return F.interpolate(torch.stack(crops), size=(height, width), mode="area")


def perturb(model: AirNet, seed: int = 1) -> AirNet:
    """Move every weight off its initialisation; the offset/mask convs get noise large enough to displace the
    deformable sampling by pixels (in and out of the image), BatchNorm variances are drawn from [0.5, 1.5)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                scale = 0.2 if "conv_offset_mask" in name else 0.02
                tensor.add_(torch.randn(tensor.shape, generator=generator) * scale)
    return model


@pytest.fixture(scope="module")
def model() -> AirNet:
    torch.manual_seed(0)
    return perturb(AirNet()).eval()


@pytest.fixture(scope="module")
def shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {key: tuple(value.shape) for key, value in AirNet().state_dict().items()}


# --- size and layout ----------------------------------------------------------------------------------

def test_parameter_count_equals_official_and_card() -> None:
    with torch.device("meta"):
        built = create_model("airnet")
    assert count_parameters(built) == OFFICIAL_PARAMS == get_card("airnet").expected_params
    assert count_parameters(built.R) == OFFICIAL_RESTORER_PARAMS
    assert count_parameters(built.E.E.encoder_q) == count_parameters(built.E.E.encoder_k) == OFFICIAL_ENCODER_PARAMS


def test_inference_parameters_are_the_restorer_and_the_query_encoder_stem() -> None:
    with torch.device("meta"):
        built = AirNet()
    stem = count_parameters(built.E.E.encoder_q.E_pre)
    assert inference_parameter_count(built)[0] == OFFICIAL_RESTORER_PARAMS + stem == get_card("airnet").inference_params


def test_state_dict_has_the_official_number_of_entries(shapes: dict[str, tuple[int, ...]]) -> None:
    assert len(shapes) == OFFICIAL_KEYS
    assert not [key for key in shapes if key.endswith("dcn.bias")]


@pytest.mark.parametrize(("key", "shape"), [
    ("R.head.0.weight", (64, 3, 3, 3)),
    ("R.body.0.body.0.dgm1.dcn.weight", (64, 64, 3, 3)),
    ("R.body.4.body.4.dgm2.dcn.conv_offset_mask.weight", (27, 128, 3, 3)),
    ("R.body.4.body.4.dgm2.dcn.conv_offset_mask.bias", (27,)),
    ("R.body.2.body.3.dgm1.sft.conv_gamma.2.weight", (64, 64, 1, 1)),
    ("R.body.2.body.3.dgm1.sft.conv_beta.0.weight", (64, 64, 1, 1)),
    ("R.body.1.body.5.weight", (64, 64, 3, 3)),
    ("R.body.5.bias", (64,)),
    ("R.tail.0.weight", (3, 64, 3, 3)),
    ("E.E.encoder_q.E_pre.backbone.0.weight", (64, 3, 3, 3)),
    ("E.E.encoder_q.E_pre.backbone.4.running_var", (64,)),
    ("E.E.encoder_q.E_pre.shortcut.1.num_batches_tracked", ()),
    ("E.E.encoder_k.E.1.backbone.3.weight", (256, 256, 3, 3)),
    ("E.E.encoder_k.mlp.2.weight", (256, 256)),
    ("E.E.queue", (256, 1280)),
    ("E.E.queue_ptr", (1,)),
])
def test_official_key_has_official_shape(shapes: dict[str, tuple[int, ...]], key: str, shape: tuple[int, ...]) -> None:
    assert shapes[key] == shape


def test_queue_length_is_256_times_the_training_batch_size() -> None:
    with torch.device("meta"):
        assert AirNet(train_batch_size=3).E.E.queue.shape == (256, 768)
        assert AirNet(train_batch_size=1).E.E.queue.shape == (256, 256)


def test_key_encoder_starts_as_a_frozen_copy_of_the_query_encoder() -> None:
    contrast = MomentumContrast(queue_size=256)
    for param_q, param_k in zip(contrast.encoder_q.parameters(), contrast.encoder_k.parameters(), strict=True):
        assert torch.equal(param_q, param_k) and not param_k.requires_grad
    assert torch.allclose(contrast.queue.norm(dim=0), torch.ones(256))


# --- eval ---------------------------------------------------------------------------------------------

def test_eval_forward_returns_an_image_of_any_input_size(model: AirNet) -> None:
    with torch.no_grad():
        out = model(photo(13, 18))
    assert out.shape == (1, 3, 13, 18) and torch.isfinite(out).all()


def test_eval_output_depends_only_on_the_restorer_and_the_query_encoder_stem(model: AirNet) -> None:
    image = photo(12, 12)
    altered = copy.deepcopy(model)
    with torch.no_grad():
        for module in (altered.E.E.encoder_k, altered.E.E.encoder_q.E, altered.E.E.encoder_q.mlp):
            for tensor in module.state_dict().values():
                tensor.copy_(torch.randn_like(tensor.float()).to(tensor.dtype))
        altered.E.E.queue.normal_()
        assert torch.equal(model(image), altered(image))
        altered.E.E.encoder_q.E_pre.backbone[0].weight.mul_(1.5)
        assert not torch.equal(model(image), altered(image))


def test_batched_eval_equals_one_image_at_a_time(model: AirNet) -> None:
    images = photo(12, 16, batch=2)
    with torch.no_grad():
        together = model(images)
        alone = torch.cat([model(images[:1]), model(images[1:])])
    assert (together - alone).abs().max().item() <= 1e-5


@pytest.mark.skipif(not torchvision_available(), reason="torchvision not installed")
def test_reference_deform_backend_gives_the_same_restoration(model: AirNet) -> None:
    reference = AirNet(deform_backend="reference").eval()
    reference.load_state_dict(model.state_dict())
    image = photo(12, 12)
    with torch.no_grad():
        assert (model(image) - reference(image)).abs().max().item() <= 1e-5
    assert (model.deform_backend, reference.deform_backend) == ("torchvision", "reference")


# --- official checkpoint format -----------------------------------------------------------------------

def test_plain_state_dict_round_trips_through_the_card_strictly(model: AirNet, tmp_path: Path) -> None:
    path = tmp_path / "All.pth"
    torch.save(model.state_dict(), path)
    loaded = create_model("airnet", checkpoint=path)
    image = photo(12, 12)
    with torch.no_grad():
        assert torch.equal(loaded(image), model(image))
    assert torch.equal(loaded.E.E.queue, model.E.E.queue)


def test_checkpoint_with_another_queue_length_is_refused_naming_the_queue(model: AirNet, tmp_path: Path) -> None:
    state = dict(model.state_dict())
    state["E.E.queue"] = torch.zeros(256, 256)  # a train_batch_size=1 checkpoint (Derain.pth, Dehaze.pth)
    path = tmp_path / "Derain.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError, match=r"E\.E\.queue checkpoint \[256, 256\] vs model \[256, 1280\]"):
        create_model("airnet", checkpoint=path)


# --- degradation-guided deformable layer ----------------------------------------------------------------

def test_fresh_deform_layer_is_the_plain_convolution_at_half_strength() -> None:
    torch.manual_seed(0)
    layer = DegradationGuidedDeformConv(4, 5, 3)
    features, degradation = torch.randn(2, 4, 7, 6), torch.randn(2, 4, 7, 6)
    expected = 0.5 * F.conv2d(features, layer.weight, padding=1)  # zero offsets, mask sigmoid(0)
    assert torch.allclose(layer(features, degradation), expected, atol=1e-6)


def test_deform_layer_takes_offsets_from_the_first_two_thirds_of_its_offset_conv() -> None:
    layer = DegradationGuidedDeformConv(2, 3, 3)
    with torch.no_grad():
        layer.conv_offset_mask.bias[:18] = torch.tensor([1.0, 0.0]).repeat(9)  # every tap one row down
        layer.conv_offset_mask.bias[18:] = 30.0  # mask sigmoid(30) = 1
    features = torch.randn(1, 2, 6, 5, generator=torch.Generator().manual_seed(5))
    # tap row i of output row h now reads input row h + i: no zero row above, two below
    expected = F.conv2d(F.pad(features, (1, 1, 0, 2)), layer.weight)
    assert torch.allclose(layer(features, torch.zeros_like(features)), expected, atol=1e-5)


# --- training step -----------------------------------------------------------------------------------

def test_train_step_scores_the_key_against_the_queue_and_enqueues_it(model: AirNet) -> None:
    trained = copy.deepcopy(model).train()
    contrast = trained.E.E
    queue_before = contrast.queue.clone()
    key_encoder_before = [p.clone() for p in contrast.encoder_k.parameters()]
    query_image, key_image = photo(16, 16), photo(16, 16).flip(-1)
    out = trained(query_image, key_image)
    assert isinstance(out, AirNetTrainingOutput)
    assert out.restored.shape == (1, 3, 16, 16)
    assert out.logits.shape == (1, 1 + 1280) and out.labels.tolist() == [0]
    assert int(contrast.queue_ptr) == 1
    assert torch.equal(contrast.queue[:, 1:], queue_before[:, 1:])
    with torch.no_grad():
        query = F.normalize(contrast.encoder_q(query_image)[1], dim=1)[0]
    key = contrast.queue[:, 0]
    assert torch.allclose(key.norm(), torch.tensor(1.0))
    assert torch.allclose(out.logits[0, 0], query @ key / 0.07, atol=1e-4)
    assert torch.allclose(out.logits[0, 1:], query @ queue_before / 0.07, atol=1e-4)
    for before, param_q, param_k in zip(key_encoder_before, contrast.encoder_q.parameters(),
                                        contrast.encoder_k.parameters(), strict=True):
        assert torch.allclose(param_k, 0.999 * before + 0.001 * param_q)


def test_encoder_in_eval_mode_updates_neither_the_key_encoder_nor_the_queue() -> None:
    torch.manual_seed(0)
    contrast = MomentumContrast(queue_size=256).eval()
    with torch.no_grad():
        next(contrast.encoder_q.parameters()).add_(1.0)
    state_before = {k: v.clone() for k, v in contrast.state_dict().items()}
    out = contrast(photo(8, 8), photo(8, 8))
    assert out.logits is None and out.labels is None
    assert out.embedding.shape == (1, 256) and out.inter.shape == (1, 64, 8, 8)
    assert all(torch.equal(state_before[k], v) for k, v in contrast.state_dict().items())


def test_training_batch_must_divide_the_queue_length() -> None:
    contrast = MomentumContrast(queue_size=256)
    with pytest.raises(ValueError, match="multiple of the training batch"):
        contrast.enqueue(torch.zeros(3, 256))


def test_train_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="train_batch_size"):
        AirNet(train_batch_size=0)
