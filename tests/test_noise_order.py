"""`--noise-order listdir`: the reference noise stream drawn in the order os.listdir returns, as the official
test loop does, byte for byte; `sorted` (the default) stays the deterministic order; the choice is a run option
recorded in the manifest and part of the resume identity."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import reference_noisy_crops
from PIL import Image

from bench_ir.data.datasets import build_task_dataset
from bench_ir.protocol import CropSpec, LayoutSpec, NoiseSpec, Protocol, TaskSpec
from bench_ir.runner import ResumeError, RunConfig, run_protocol

SIZES = {"b.png": (40, 56), "a.png": (33, 47), "c.png": (19, 35), "d.png": (24, 24)}
LISTDIR = ["c.png", "a.png", "d.png", "b.png"]  # a fixed, unsorted file-system order


def _protocol() -> Protocol:
    task = TaskSpec(name="denoise", label="toy σ25", dataset="toy", layouts=[LayoutSpec(target="clean")],
                    noise=NoiseSpec(sigma=25.0, seed=0, stream="reference"))
    return Protocol(name="toy", title="toy", version=1, tasks=[task], convention="M1",
                    crop=CropSpec(rule="center_multiple", base=16), source="test")


@pytest.fixture
def clean_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    for i, (name, (h, w)) in enumerate(SIZES.items()):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    real_listdir = os.listdir

    def fixed_listdir(path=None):
        return list(LISTDIR) if path is not None and Path(path) == folder else real_listdir(path)

    monkeypatch.setattr(os, "listdir", fixed_listdir)
    return folder


def _noisy_inputs(dataset) -> dict[str, np.ndarray]:
    return {item["name"]: np.round(item["input"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            for item in (dataset[i] for i in range(len(dataset)))}


def test_listdir_order_reproduces_the_official_loop_byte_for_byte(clean_dir):
    dataset = build_task_dataset(_protocol(), "denoise", data_root=clean_dir.parent, noise_order="listdir")
    assert dataset.names == sorted(SIZES)  # records keep the sorted order; only the noise stream follows listdir
    expected = {name: noisy for name, (_, noisy) in reference_noisy_crops(clean_dir, os.listdir(clean_dir)).items()}
    got = _noisy_inputs(dataset)
    assert set(got) == set(expected)
    for name in expected:
        assert got[name].tobytes() == expected[name].tobytes(), name


def test_sorted_order_draws_a_different_realisation_than_listdir(clean_dir):
    listdir = _noisy_inputs(build_task_dataset(_protocol(), "denoise", data_root=clean_dir.parent,
                                               noise_order="listdir"))
    ordered = _noisy_inputs(build_task_dataset(_protocol(), "denoise", data_root=clean_dir.parent))
    assert any(listdir[name].tobytes() != ordered[name].tobytes() for name in SIZES)


def test_listdir_order_keeps_each_image_noise_under_a_limit(clean_dir):
    full = _noisy_inputs(build_task_dataset(_protocol(), "denoise", data_root=clean_dir.parent,
                                            noise_order="listdir"))
    limited = _noisy_inputs(build_task_dataset(_protocol(), "denoise", data_root=clean_dir.parent,
                                               noise_order="listdir").limit(2))
    assert all(limited[name].tobytes() == full[name].tobytes() for name in limited)


def test_listdir_order_is_refused_for_the_sample_data(tmp_path):
    with pytest.raises(ValueError, match="sample"):
        run_protocol(RunConfig(protocol="5deg", model="input", sample=True, noise_order="listdir",
                               run_dir=tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_run_records_the_noise_order_and_resumes_only_with_the_same_one(clean_dir, tmp_path):
    config = RunConfig(protocol=_protocol(), model="input", data_root=clean_dir.parent, noise_order="listdir",
                       run_dir=tmp_path / "run", device="cpu")
    outcome = run_protocol(config)
    assert outcome.manifest["noise_order"] == "listdir"
    with pytest.raises(ResumeError, match="noise order: listdir → sorted"):
        run_protocol(RunConfig(**{**config.__dict__, "noise_order": "sorted", "resume": True}))
