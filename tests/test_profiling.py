"""Profiling: fvcore FLOP conventions, parameter counts, latency fields, training step, errors."""

from __future__ import annotations

import pathlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench_ir.acceleration import plan_execution
from bench_ir.cards import get_card
from bench_ir.models.mirage import MIRAGE
from bench_ir.profiling import (
    CPU_TIMING,
    CUDA_TIMING,
    ProfileError,
    count_flops,
    default_timing,
    inference_parameter_count,
    profile_model,
    profile_to_markdown,
)

# one thread: the 224 px traces take no longer on it, and a thread pool only costs time on a shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")

# Counts measured with fvcore 0.1.5 FlopCountAnalysis on the official Amazingren/MIRAGE modules (926dc83)
# in eval mode at 1x3x224x224; the official forward always runs the SPD head and its InfoNCE logits.
OFFICIAL_FLOPS_T = 16_275_474_368
OFFICIAL_FLOPS_S = 26_711_378_392
INFO_NCE_LOGITS_FLOPS = 64  # z_shallow (1x64) @ z_latent.T (64x1), computed by the official loss in forward


class ConvThenLinear(nn.Module):
    """conv 3->4, 3x3, no bias, padding 1 on 8x8; GELU; linear 256->10. Hand count (multiply-adds):
    conv 4*8*8 outputs x 3*3*3 = 6912; linear 256*10 = 2560 (fvcore ignores the bias add)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.gelu(self.conv(x)).flatten(1))


class NetWithAuxHead(nn.Module):
    """Restores with a 3x3 conv; in train mode also returns an auxiliary embedding from a training-only
    head (like MIRAGE's SPD head). BatchNorm keeps running statistics that profiling must not change."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(3)
        self.aux = nn.Linear(3, 5, bias=False)

    def training_only_modules(self) -> list[str]:
        return ["aux"]

    def forward(self, x: torch.Tensor):
        restored = self.norm(self.body(x)) + x
        if not self.training:
            return restored
        return restored, self.aux(restored.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def mirage_t() -> MIRAGE:
    torch.manual_seed(0)
    return MIRAGE("tiny").eval()


def test_flops_of_a_hand_countable_network_equal_the_hand_count():
    count = count_flops(ConvThenLinear(), 8)
    assert count.total == 6912 + 2560
    assert count.by_operator == {"conv": 6912, "linear": 2560}
    assert count.uncounted == {"aten::gelu": 1}


def test_flops_scale_with_image_area_for_convolutions():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, (16, 24)).total == 8 * 16 * 24 * 27


def test_training_only_heads_are_excluded_from_inference_parameters_and_flops():
    net = NetWithAuxHead()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = profile_model(net, size=16, repeats=1, warmup=0)
    assert result.params_total == 81 + 6 + 15
    assert result.params_inference == 81 + 6
    assert "except aux" in result.params_inference_source
    # body conv 3*16*16*27 = 20736, eval BatchNorm 2 per element = 1536; the aux head adds 15.
    assert result.flops == 20736 + 1536
    assert result.flops_with_training_heads == 20736 + 1536 + 15
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not any(m.training for m in net.modules())


def test_model_without_training_heads_has_no_second_flop_count():
    result = profile_model(ConvThenLinear(), size=8, repeats=1, warmup=0)
    assert result.params_inference == result.params_total == 4 * 27 + 2570
    assert result.flops_with_training_heads is None


def test_the_cpu_times_fewer_forwards_by_default_and_says_how_many():
    stages = []
    result = profile_model(ConvThenLinear(), size=8, flops=False, progress=lambda *event: stages.append(event))
    assert (result.warmup, result.repeats) == CPU_TIMING == (1, 5)
    assert default_timing("cuda") == CUDA_TIMING == (5, 20)
    assert "(n=5) |" in profile_to_markdown(result)
    assert stages[0] == ("warm-up", 0, 1) and stages[-1] == ("timed", 5, 5)
    assert [s for s in stages if s[0] == "timed"] == [("timed", i, 5) for i in range(6)]


def test_the_device_column_names_the_cpu_not_its_architecture(monkeypatch):
    import platform

    result = profile_model(ConvThenLinear(), size=8, repeats=1, warmup=0, flops=False)
    assert result.device_name not in ("", platform.machine())
    from bench_ir import manifest

    monkeypatch.setattr(manifest, "Path", lambda *_: pathlib.Path("/nonexistent/cpuinfo"))
    monkeypatch.setattr(platform, "processor", lambda: platform.machine())
    assert manifest.cpu_name() == "cpu"


def test_latency_and_throughput_fields_are_positive_and_consistent():
    result = profile_model(ConvThenLinear(), size=8, batch=4, repeats=5, warmup=1, flops=False)
    assert 0 < result.latency_ms_median <= result.latency_ms_p90
    assert result.throughput_images_per_s == pytest.approx(4 / (result.latency_ms_median / 1e3))
    assert (result.batch, result.repeats, result.warmup) == (4, 5, 1)
    assert result.flops is None and result.peak_memory_bytes is None  # no FLOPs asked; CPU has no peak


def test_forwards_are_timed_on_the_requested_execution_path():
    eager = profile_model(ConvThenLinear(), size=8, repeats=2, warmup=0, flops=False)
    compiled = profile_model(ConvThenLinear(), size=8, repeats=2, warmup=0, flops=False,
                             execution=plan_execution(torch.device("cpu"), compile="on"))
    assert eager.execution is None
    assert compiled.execution["compile_mode"] == "default" and compiled.execution["compiled_shapes"] == 1


def test_training_step_is_timed_and_leaves_weights_untouched():
    net = NetWithAuxHead()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = profile_model(net, size=16, repeats=1, warmup=0, flops=False, train=True, train_batch=2,
                           train_size=16, train_steps=2)
    assert result.train is not None and result.train.step_ms_median > 0
    assert (result.train.batch, result.train.size, result.train.steps) == (2, 16, 2)
    assert result.train.peak_memory_bytes is None
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not net.training


def test_mirage_parameter_counts_come_from_the_model_and_card(mirage_t):
    result = profile_model(mirage_t, get_card("mirage-t"), size=16, repeats=1, warmup=0, flops=False)
    assert result.params_total == 6_207_412
    assert result.params_inference == 6_158_576
    assert inference_parameter_count(MIRAGE("small"), get_card("mirage-s"))[0] == 9_629_499


def test_size_the_model_cannot_take_raises_profile_error(mirage_t):
    with pytest.raises(ProfileError, match=r"MIRAGE-T needs H and W divisible by 8.*size 100.*Use 96 or 104"):
        profile_model(mirage_t, get_card("mirage-t"), size=100)


def test_failing_forward_becomes_profile_error():
    with pytest.raises(ProfileError, match=r"ConvThenLinear cannot run on a 1x3x16x16 .*input"):
        profile_model(ConvThenLinear(), size=16)  # the linear layer expects an 8x8 input


@pytest.mark.parametrize("counts, message", [({"batch": 0}, "--batch must be at least 1, got 0"),
                                             ({"repeats": 0}, "--repeats must be at least 1, got 0"),
                                             ({"warmup": -1}, "--warmup must be 0 or more, got -1")])
def test_an_impossible_count_is_a_profile_error_naming_the_option(counts, message):
    with pytest.raises(ProfileError) as err:
        profile_model(ConvThenLinear(), size=8, **counts)
    assert str(err.value) == message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_request_without_cuda_is_a_profile_error():
    with pytest.raises(ProfileError, match="CUDA is not available"):
        profile_model(ConvThenLinear(), size=8, device="cuda")


def test_markdown_table_lists_results_and_conventions():
    result = profile_model(NetWithAuxHead(), size=16, repeats=1, warmup=0)
    text = profile_to_markdown([result])
    header, rule, row = text.splitlines()[:3]
    assert "FLOPs (G)" in header and "FLOPs with training heads (G)" in header
    assert rule.count("---") == header.count("|") - 1
    assert row.startswith("| NetWithAuxHead | 0.000102 | 0.0000870 | 0.0000223 | 0.0000223 | 1x3x16x16 |")
    assert "| — |" in row  # no peak memory on CPU
    assert "1 multiply-add = 1 FLOP" in text
    assert result.to_dict()["flops_g"] == pytest.approx(result.flops / 1e9)


# ------------------------------------------------------------------ published MIRAGE FLOPs (224x224 traces)
@pytest.mark.slow
def test_mirage_t_flops_match_the_published_16g(mirage_t):
    count = count_flops(mirage_t, 224)
    assert count.total == pytest.approx(OFFICIAL_FLOPS_T, rel=5e-3)
    assert {"conv", "matmul"} <= count.by_operator.keys()
    assert "aten::softmax" in count.uncounted


@pytest.mark.slow
def test_mirage_t_flops_with_spd_head_reproduce_the_official_count(mirage_t):
    count = count_flops(mirage_t, 224, with_training_heads=True)
    assert count.total == OFFICIAL_FLOPS_T - INFO_NCE_LOGITS_FLOPS
    assert not mirage_t.training


@pytest.mark.slow
def test_mirage_s_flops_match_the_published_27g():
    torch.manual_seed(0)
    count = count_flops(MIRAGE("small").eval(), 224)
    assert count.total == pytest.approx(OFFICIAL_FLOPS_S, rel=5e-3)
