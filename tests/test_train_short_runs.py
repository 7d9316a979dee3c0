"""What a training is told when it does not train as the recipe's single-process run would: a run cut short by
--max-steps while the learning rate is still 0, and a global batch that torchrun splits over
processes whose model computes statistics over each process's share."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import FAST_TRAINING as FAST
from conftest import TINY_MIRAGE_ARGS as TINY
from torch import nn

from bench_ir.cards import get_card, with_model_args
from bench_ir.checkpoints import create_model
from bench_ir.train.plan_notices import process_count_notice, process_split_notices
from bench_ir.train.recipes import DataSpec, ScheduleSpec, load_recipe, resolve_plan
from bench_ir.train.schedule import short_run_notices, zero_lr_units
from bench_ir.train.session import batch_dependent_terms
from bench_ir.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")

# the official MIRAGE schedule shape (start at lr 0, one epoch of lag) over a short warmup
LAGGED_WARMUP = ScheduleSpec(warmup=3, max=30, start_factor=0.0, delay=1)
# 14 sample photos x 1 degradation, batch 7: 2 steps per epoch, so epochs 0 and 1 (lr 0) are steps 1-4
SMALL = {**FAST, "batch_size": 7}


def _lagged_sample_recipe():
    return dataclasses.replace(load_recipe("sample"), schedule=LAGGED_WARMUP,
                               data=[DataSpec(task="sample", layout="sample", degradations=["haze"])])


def _schedule_notices(notices: list[str]) -> list[str]:
    return [n for n in notices if "lr 0" in n or "warmup" in n]


# ------------------------------------------------------------------------------- runs cut short by --max-steps
def test_the_official_schedule_trains_its_first_two_epochs_at_lr_0():
    assert zero_lr_units(load_recipe("3deg").schedule) == 2
    assert zero_lr_units(load_recipe("sample").schedule) == 0  # its warmup starts at 0.1 x the lr


def test_a_run_cut_while_the_lr_is_still_0_says_that_its_parameters_do_not_change(tmp_path):
    outcome = train(_lagged_sample_recipe(), "mirage-t", None, tmp_path / "run", max_steps=3, **SMALL)
    (notice,) = _schedule_notices(outcome.manifest["notices"])
    assert notice.startswith("--max-steps 3: every step of this run trains at lr 0: the recipe's learning-rate "
                             "schedule is at 0 for its first 2 epochs = 4 steps (start_factor 0, delay 1), so the "
                             "model's parameters keep their initial values; train at least 5 steps")


def test_a_run_cut_past_the_lr_0_steps_gets_no_schedule_notice(tmp_path):
    outcome = train(_lagged_sample_recipe(), "mirage-t", None, tmp_path / "run", max_steps=5, **SMALL)
    assert _schedule_notices(outcome.manifest["notices"]) == []
    assert short_run_notices(LAGGED_WARMUP, steps=4, steps_per_epoch=2)


def test_a_step_counted_schedule_counts_its_lr_0_span_in_steps():
    spec = dataclasses.replace(LAGGED_WARMUP, unit="step")
    (notice,) = short_run_notices(spec, steps=2, steps_per_epoch=100)
    assert "is at 0 for its first 2 steps (start_factor 0, delay 1)" in notice and "at least 3 steps" in notice


# ------------------------------------------------------------------------------- torchrun's split of the batch
def test_a_split_batch_is_noticed_with_what_depends_on_one_processs_images():
    terms = ["BatchNorm statistics", "the SPD contrastive negatives"]
    assert process_split_notices(32, 4, terms) == [
        "torchrun: the global batch of 32 is split into 4 x 8; BatchNorm statistics and the SPD contrastive "
        "negatives come from the 8 images of each process: close to, not identical with, one process training all "
        "32 at once"]


@pytest.mark.parametrize(("world_size", "terms"), [(1, ["BatchNorm statistics"]), (4, [])])
def test_no_split_notice_in_one_process_or_for_a_model_without_batch_statistics(world_size, terms):
    assert process_split_notices(32, world_size, terms) == []


def test_mirage_depends_on_its_batch_through_batchnorm_and_the_spd_negatives():
    card = with_model_args(get_card("mirage-t"), TINY)
    plan = resolve_plan(load_recipe("sample"), card)
    assert batch_dependent_terms(create_model(card), card, plan) == ["BatchNorm statistics",
                                                                     "the SPD contrastive negatives"]


def test_a_model_without_batchnorm_trained_with_an_spd_weight_does_not_depend_on_its_batch():
    card = get_card(str(Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml"))
    plan = resolve_plan(load_recipe("sample"), card)
    assert plan.spd_weight > 0  # the recipe's weight; the network has no SPD head
    assert batch_dependent_terms(create_model(card), card, plan) == []


def test_a_load_balancing_weight_makes_the_experts_loss_depend_on_the_batch():
    card = get_card("moce-ir")
    plan = resolve_plan(load_recipe("sample"), card)
    assert batch_dependent_terms(nn.Conv2d(3, 3, 1), card, plan) == ["the experts' load-balancing loss"]


def test_airnets_moco_queue_is_named_among_what_depends_on_one_processs_images():
    card = get_card("airnet")
    plan = resolve_plan(load_recipe("sample"), card)
    terms = batch_dependent_terms(create_model(card), card, plan)
    assert terms[0] == "BatchNorm statistics" and terms[-1].startswith("the MoCo queue's negatives (rank 0's keys")


def test_a_run_resumed_with_another_process_count_is_told_its_batch_statistics_differ():
    assert process_count_notice(1, 4, 32, ["BatchNorm statistics"]) == (
        "resumed with 4 processes instead of 1: data order is unchanged but stochastic-depth draws differ from an "
        "uninterrupted run, and BatchNorm statistics now come from 8 images per process instead of 32")
