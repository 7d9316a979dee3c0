"""Runs recorded before manifests kept the resolved protocol (``protocol.resolved``) stay resumable after an edit of
their protocol file that changes no record, and are refused, naming the field, after one that does; a protocol's
``average`` changes no record (a report computes the Average)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench_ir.runner import ResumeError, RunConfig, run_protocol

pytestmark = pytest.mark.usefixtures("one_thread")  # 16x16 images: a thread pool only costs time

PROTOCOL = """\
name: tiny
title: A tiny protocol
version: 1
convention: M1
crop: {rule: center_multiple, base: 16}
average: [a, n]
tasks:
  - {name: a, label: A, dataset: a, layouts: [{input: a/in, target: a/gt}]}
  - {name: n, label: N, dataset: n, noise: {sigma: 15, stream: per_image}, layouts: [{target: n/gt}]}
"""


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, Path]:
    """A protocol file (a paired task 'a', a noise task 'n') and a data root with two 16x16 images per task."""
    root = tmp_path / "data"
    for folder in ("a/in", "a/gt", "n/gt"):
        (root / folder).mkdir(parents=True)
    for i in range(2):
        image = np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        for folder in ("a/gt", "n/gt"):
            Image.fromarray(image).save(root / folder / f"{i}.png")
        Image.fromarray(255 - image).save(root / "a" / "in" / f"{i}.png")
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(PROTOCOL)
    return protocol, root


def _run(protocol: Path, root: Path, run_dir: Path, **kwargs):
    return run_protocol(RunConfig(protocol=str(protocol), model="input", data_root=root, run_dir=run_dir,
                                  device="cpu", **kwargs))


def _limited_run(protocol: Path, root: Path, run_dir: Path, old: bool) -> None:
    """A `--limit 1` run (unfinished: one of two images per task); with ``old``, its manifest made as bench-ir wrote
    it before f1eaa40: no ``protocol.resolved``, the protocol's fields at the top level of ``protocol``."""
    _run(protocol, root, run_dir, limit=1)
    if old:
        path = run_dir / "manifest.json"
        manifest = json.loads(path.read_text())
        del manifest["protocol"]["resolved"]
        path.write_text(json.dumps(manifest))


def _edit(protocol: Path, old: str, new: str) -> None:
    text = protocol.read_text()
    assert old in text
    protocol.write_text(text.replace(old, new))


def test_an_old_manifest_resumes_after_an_edit_of_layouts_and_notes_only(tiny, tmp_path):
    protocol, root = tiny
    _limited_run(protocol, root, tmp_path / "run", old=True)
    _edit(protocol, "layouts: [{input: a/in", "notes: moved, layouts: [{input: elsewhere/in, target: elsewhere/gt}, "
                                              "{input: a/in")
    protocol.write_text(protocol.read_text() + "notes: a note written after the run\n")
    assert _run(protocol, root, tmp_path / "run", resume=True).manifest["status"] == "complete"


@pytest.mark.parametrize(("old", "new", "changed"), [
    ("base: 16", "base: 8", "crop"),
    ("sigma: 15, stream: per_image", "sigma: 25, stream: per_image", "task 'n': noise"),
], ids=["crop", "noise"])
def test_an_old_manifest_whose_recorded_measurement_differs_is_refused_naming_the_field(tiny, tmp_path, old, new,
                                                                                        changed):
    protocol, root = tiny
    _limited_run(protocol, root, tmp_path / "run", old=True)
    _edit(protocol, old, new)
    with pytest.raises(ResumeError) as refused:
        _run(protocol, root, tmp_path / "run", resume=True)
    assert f"protocol: the file of 'tiny' now defines another measurement ({changed} changed)" in str(refused.value)
    assert "content sha256" not in str(refused.value)


@pytest.mark.parametrize("old", [False, True], ids=["manifest with resolved protocol", "old manifest"])
def test_a_run_whose_manifest_average_differs_from_the_protocols_resumes(tiny, tmp_path, old):
    protocol, root = tiny
    _limited_run(protocol, root, tmp_path / "run", old=old)
    _edit(protocol, "average: [a, n]", "average: []")
    resumed = _run(protocol, root, tmp_path / "run", resume=True)
    assert resumed.manifest["status"] == "complete"
    assert resumed.manifest["protocol"]["average"] == []
