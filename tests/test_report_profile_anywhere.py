"""`report --profile` of a run of a researcher's own model card works from any folder: the card's path is recorded
relative to the folder the run was started from, and a profile joins runs of the same card by its content."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from bench_ir.report import build_report
from bench_ir.report.profiles import join_key
from bench_ir.results import load_run
from bench_ir.runner import RunConfig, run_protocol

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def own_card_run(tmp_path, monkeypatch) -> Path:
    """A 3deg sample run (one image per task) of a copy of the example card in ``tmp_path/project/mycard``, started
    from ``tmp_path/project`` into ``project/runs/own``; the current folder is then ``tmp_path/elsewhere``."""
    project = tmp_path / "project"
    (project / "mycard").mkdir(parents=True)
    shutil.copy(EXAMPLES / "tiny_unet.py", project / "mycard" / "own_unet.py")  # a module name no other test has
    shutil.copy(EXAMPLES / "tiny-unet.safetensors", project / "mycard" / "tiny-unet.safetensors")
    card = (EXAMPLES / "tiny-unet.yaml").read_text().replace("tiny_unet:TinyUNet", "own_unet:TinyUNet")
    (project / "mycard" / "tiny-unet.yaml").write_text(card)
    monkeypatch.chdir(project)
    run_protocol(RunConfig(protocol="3deg", model="mycard/tiny-unet.yaml", checkpoint="mycard/tiny-unet.safetensors",
                           sample=True, limit=1, run_dir=project / "runs" / "own", device="cpu"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return project / "runs" / "own"


def _as_in_a_new_process(monkeypatch) -> None:
    """Forget the card's module and folder that the run imported, as `bench-ir report` in a new process would."""
    monkeypatch.delitem(sys.modules, "own_unet", raising=False)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if not entry.endswith("mycard")])


def test_report_profile_of_an_own_card_works_from_another_folder(own_card_run, tmp_path, monkeypatch):
    _as_in_a_new_process(monkeypatch)
    assert load_run(own_card_run).manifest["model"]["card"]["source"] == "mycard/tiny-unet.yaml"
    text = build_report("efficiency", [own_card_run], fmt="csv", profile=True, runs_root=tmp_path / "profiles",
                        profile_size=32)
    assert "TinyUNet" in text or "tiny" in text.lower()


def test_a_profile_joins_runs_of_one_card_recorded_by_different_paths(own_card_run):
    manifest = load_run(own_card_run).manifest
    moved = {**manifest, "model": {**manifest["model"], "card": {**manifest["model"]["card"],
                                                                 "source": "elsewhere/tiny-unet.yaml"}}}
    assert join_key(moved) == join_key(manifest)


def test_an_own_card_whose_factory_is_nowhere_is_an_error_saying_how_to_profile_it(own_card_run, tmp_path,
                                                                                    monkeypatch):
    shutil.rmtree(tmp_path / "project" / "mycard")
    _as_in_a_new_process(monkeypatch)
    with pytest.raises(ValueError, match=r"--profile: run own was made with model card mycard/tiny-unet.yaml, whose "
                                         r"factory cannot be imported from here .*bench-ir profile --model CARD"):
        build_report("efficiency", [own_card_run], fmt="csv", profile=True, runs_root=tmp_path / "profiles",
                     profile_size=32)
