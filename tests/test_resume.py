"""Resume identity: a run directory is continued only with the setup that made it (bench_ir.resume); --resume
without --run-dir finds the newest unfinished run of the same setup; random weights on real data are refused
unless asked for, and then seeded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.results import load_run
from bench_ir.resume import IDENTITY_FIELDS, identity_differences, resume_identity
from bench_ir.runner import MissingWeightsError, ResumeError, RunConfig, folder_protocol, run_protocol

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
runner = CliRunner()
PROTOCOL = """\
name: tiny
title: A tiny two-task protocol
version: 1
convention: M1
crop: {rule: center_multiple, base: 16}
average: [a, b]
tasks:
  - {name: a, label: A, dataset: a, layouts: [{input: a/in, target: a/gt, pairing: same_name}]}
  - {name: b, label: B, dataset: b, layouts: [{input: b/in, target: b/gt, pairing: same_name}]}
"""


def _pairs(folder: Path, n: int = 3, size: int = 32, seed: int = 0) -> None:
    (folder / "in").mkdir(parents=True)
    (folder / "gt").mkdir()
    for i in range(n):
        rng = np.random.default_rng((seed, i))
        clean = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(folder / "gt" / f"{i}.png")
        Image.fromarray(noisy).save(folder / "in" / f"{i}.png")


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, Path]:
    """A protocol file and a data root holding its two tasks."""
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(PROTOCOL)
    root = tmp_path / "data"
    _pairs(root / "a")
    _pairs(root / "b", seed=1)
    return protocol, root


def _run(protocol, root, run_dir, **kwargs):
    return run_protocol(RunConfig(protocol=str(protocol), model="input", data_root=root, run_dir=run_dir,
                                  device="cpu", **kwargs))


def _refusal(protocol, root, run_dir, **kwargs) -> str:
    with pytest.raises(ResumeError) as caught:
        _run(protocol, root, run_dir, resume=True, **kwargs)
    return str(caught.value)


def test_the_same_data_under_another_root_is_the_same_run(tiny, tmp_path):
    protocol, root = tiny
    _run(protocol, root, tmp_path / "run", limit=1)
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    assert _run(protocol, moved, tmp_path / "run", resume=True).manifest["status"] == "complete"


def test_other_data_is_refused_naming_the_task_and_the_files(tiny, tmp_path):
    protocol, root = tiny
    _run(protocol, root, tmp_path / "run")
    (root / "a" / "in" / "2.png").unlink()
    (root / "a" / "gt" / "2.png").unlink()
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(root / "a" / "in" / "1.png")
    message = _refusal(protocol, root, tmp_path / "run")
    assert "data of task 'a': 3 pairs → 2 pairs (missing now: 2.png; changed files: 1.png)" in message
    assert "task 'b'" not in message


def test_a_run_that_failed_on_a_corrupt_image_resumes_once_the_file_is_replaced(tiny, tmp_path):
    protocol, root = tiny
    (root / "a" / "in" / "2.png").write_bytes((root / "a" / "in" / "2.png").read_bytes()[:60])  # truncated
    with pytest.raises(Exception, match="2.png"):
        _run(protocol, root, tmp_path / "run")
    assert load_run(tmp_path / "run").manifest["status"] == "failed"
    _pairs(tmp_path / "fresh", seed=0)
    shutil.copy(tmp_path / "fresh" / "in" / "2.png", root / "a" / "in" / "2.png")  # the file, fixed
    resumed = _run(protocol, root, tmp_path / "run", resume=True)
    assert resumed.manifest["status"] == "complete"
    assert resumed.manifest["data"]["a"]["pairs"][2][2] == (root / "a" / "in" / "2.png").stat().st_size



def test_the_error_of_a_failed_run_says_what_it_kept_and_how_to_continue_it(tiny, tmp_path):
    protocol, root = tiny
    (root / "a" / "in" / "2.png").write_bytes((root / "a" / "in" / "2.png").read_bytes()[:60])  # truncated
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", "--protocol", str(protocol), "--model", "input", "--data-root", str(root),
                                 "--run-dir", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "2.png: corrupt or truncated image" in said
    assert (f"the run is kept in {run_dir} with the 2 image(s) scored so far; once the cause is fixed, the same "
            f"command plus --resume --run-dir {run_dir} continues it") in said

def test_a_changed_file_of_an_image_already_scored_is_still_refused(tiny, tmp_path):
    protocol, root = tiny
    _run(protocol, root, tmp_path / "run", limit=2)
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(root / "a" / "in" / "2.png")  # not scored: allowed
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(root / "a" / "in" / "1.png")  # scored: refused
    message = _refusal(protocol, root, tmp_path / "run")
    assert "changed files: 1.png)" in message and "2.png" not in message


def test_a_task_with_fewer_pairs_than_its_published_test_set_is_noted_in_the_run(tiny, tmp_path):
    protocol, root = tiny
    protocol.write_text(PROTOCOL.replace("dataset: a,", "dataset: a, expected_count: 100,")
                        .replace("dataset: b,", "dataset: b, expected_count: 3,"))
    outcome = _run(protocol, root, tmp_path / "run")
    assert [n for n in outcome.notices if "expected" in n] == [
        "task 'a' (A): 3 pairs found, 100 expected; not the published test set, so its mean is not comparable to "
        f"the published number (bench-ir data check --protocol {protocol} --data-root {root} says what differs)"]
    assert outcome.manifest["notices"] == outcome.notices


def test_other_input_and_target_folders_are_refused(tmp_path):
    _pairs(tmp_path / "one")
    _pairs(tmp_path / "two", seed=5)
    run_protocol(RunConfig(protocol=folder_protocol(tmp_path / "one" / "in", tmp_path / "one" / "gt"), model="input",
                           run_dir=tmp_path / "run", device="cpu"))
    with pytest.raises(ResumeError, match=r"input folder of task 'folder': .*one/in → .*two/in") as caught:
        run_protocol(RunConfig(protocol=folder_protocol(tmp_path / "two" / "in", tmp_path / "two" / "gt"),
                               model="input", run_dir=tmp_path / "run", device="cpu", resume=True))
    assert "target folder" in str(caught.value)


def test_tiling_another_convention_and_another_dtype_are_refused_in_one_message(tiny, tmp_path):
    protocol, root = tiny
    _run(protocol, root, tmp_path / "run")
    message = _refusal(protocol, root, tmp_path / "run", tile=16, tile_overlap=4, convention="M2", dtype="bf16")
    assert "tiling: whole images → tiles of 16 px, overlap 4" in message
    assert "convention: M1 (" in message and "→ M2 (" in message and "dtype: fp32 → bf16" in message
    assert message.count("cannot resume") == 1


def test_a_card_with_the_same_name_but_other_content_is_refused(tmp_path):
    _pairs(tmp_path / "d")
    protocol = folder_protocol(tmp_path / "d" / "in", tmp_path / "d" / "gt")
    card = tmp_path / "card.yaml"
    card.write_text((EXAMPLES / "tiny-unet.yaml").read_text())
    shutil.copy(EXAMPLES / "tiny_unet.py", tmp_path / "tiny_unet.py")
    run_protocol(RunConfig(protocol=protocol, model=str(card), run_dir=tmp_path / "run", device="cpu",
                           random_weights=True))
    card.write_text((EXAMPLES / "tiny-unet.yaml").read_text().replace("width: 16", "width: 8"))
    changed = (r"model: card 'tiny-unet' \(factory tiny_unet:TinyUNet, args \{'width': 16\}, .*\) → "
               r"card 'tiny-unet' \(factory tiny_unet:TinyUNet, args \{'width': 8\}")
    with pytest.raises(ResumeError, match=changed):
        run_protocol(RunConfig(protocol=protocol, model=str(card), run_dir=tmp_path / "run", device="cpu",
                               random_weights=True, resume=True))


def _own_model_run(tmp_path: Path, **kwargs):
    """A run of a copy of the example card and its factory file ``tiny_unet.py`` in ``tmp_path``."""
    protocol = folder_protocol(tmp_path / "d" / "in", tmp_path / "d" / "gt")
    return run_protocol(RunConfig(protocol=protocol, model=str(tmp_path / "card.yaml"), run_dir=tmp_path / "run",
                                  device="cpu", random_weights=True, **kwargs))


@pytest.fixture
def own_model(tmp_path) -> Path:
    """Folder pairs, the example card and its factory file copied into ``tmp_path``, and a first run of it with
    --limit 1; returns the factory file."""
    _pairs(tmp_path / "d")
    (tmp_path / "card.yaml").write_text((EXAMPLES / "tiny-unet.yaml").read_text())
    shutil.copy(EXAMPLES / "tiny_unet.py", tmp_path / "tiny_unet.py")
    _own_model_run(tmp_path, limit=1)
    return tmp_path / "tiny_unet.py"


def test_an_own_model_whose_factory_code_changed_is_refused(own_model, tmp_path):
    own_model.write_text(own_model.read_text().replace("return x + self.head", "return x - self.head"))
    with pytest.raises(ResumeError, match=r"model: the source file of factory tiny_unet:TinyUNet of card "
                                          r"'tiny-unet' changed \(sha256 [0-9a-f]{12}… → [0-9a-f]{12}…\)"):
        _own_model_run(tmp_path, resume=True)


def test_an_own_model_whose_factory_file_gained_only_comments_and_blank_lines_resumes(own_model, tmp_path):
    own_model.write_text("# a comment added after the run began\n\n" + own_model.read_text() + "\n\n# the end\n")
    assert _own_model_run(tmp_path, resume=True).manifest["status"] == "complete"


def test_random_weights_instead_of_a_checkpoint_or_another_seed_are_refused(tmp_path):
    _pairs(tmp_path / "d")
    protocol = folder_protocol(tmp_path / "d" / "in", tmp_path / "d" / "gt")
    card, weights = str(EXAMPLES / "tiny-unet.yaml"), EXAMPLES / "tiny-unet.safetensors"
    run_protocol(RunConfig(protocol=protocol, model=card, checkpoint=weights, run_dir=tmp_path / "run", device="cpu"))
    with pytest.raises(ResumeError, match=r"weights: checkpoint sha256 [0-9a-f]{64} → random-init seed 0"):
        run_protocol(RunConfig(protocol=protocol, model=card, run_dir=tmp_path / "run", device="cpu",
                               random_weights=True, resume=True))
    run_protocol(RunConfig(protocol=protocol, model=card, run_dir=tmp_path / "seeded", device="cpu",
                           random_weights=True, seed=1, limit=1))
    with pytest.raises(ResumeError, match="weights: random-init seed 1 → random-init seed 2"):
        run_protocol(RunConfig(protocol=protocol, model=card, run_dir=tmp_path / "seeded", device="cpu",
                               random_weights=True, seed=2, resume=True))


def test_other_library_versions_are_refused(tiny, tmp_path, monkeypatch):
    protocol, root = tiny
    _run(protocol, root, tmp_path / "run")
    import bench_ir.runner

    real = bench_ir.runner.environment_info
    monkeypatch.setattr(bench_ir.runner, "environment_info", lambda: {**real(), "numpy": "0.0.1"})
    assert "library versions: " in (message := _refusal(protocol, root, tmp_path / "run"))
    assert "numpy 0.0.1" in message.split("→")[1]


def test_editing_only_a_protocol_files_descriptions_keeps_its_run_resumable(tiny, tmp_path):
    protocol, root = tiny
    _run(protocol, root, tmp_path / "run", limit=1)
    protocol.write_text(PROTOCOL.replace("A tiny two-task protocol", "A tiny protocol, retitled")
                        .replace("label: A,", "label: Task A, notes: relabelled,")
                        + 'description: "described after the run began"\nnotes: "a typo fixed"\n')
    resumed = _run(protocol, root, tmp_path / "run", resume=True)
    assert resumed.manifest["status"] == "complete"
    assert resumed.manifest["protocol"]["title"] == "A tiny protocol, retitled"


def test_a_protocol_file_that_now_measures_differently_is_refused_naming_what_changed(tiny, tmp_path):
    protocol, root = tiny
    _run(protocol, root, tmp_path / "run", limit=1)
    protocol.write_text(PROTOCOL.replace("base: 16", "base: 8").replace("dataset: a,", "dataset: a2,"))
    assert ("protocol: the file of 'tiny' now defines another measurement (crop; task 'a': dataset changed)"
            in _refusal(protocol, root, tmp_path / "run"))


def test_another_layout_that_finds_the_same_pairs_keeps_the_run_resumable(tiny, tmp_path):
    protocol, root = tiny
    _run(protocol, root, tmp_path / "run", limit=1)
    protocol.write_text(PROTOCOL.replace("layouts: [{input: a/in", "layouts: [{input: elsewhere/in, target: "
                                         "elsewhere/gt}, {input: a/in").replace("same_name}]}", "stem}]}"))
    assert _run(protocol, root, tmp_path / "run", resume=True).manifest["status"] == "complete"


def test_a_run_whose_manifest_keeps_only_the_protocol_sha256_is_compared_by_it():
    old = {"protocol": {"name": "p", "sha256": "1"}}
    resolved = {"protocol": {"name": "p", "sha256": "2", "resolved": {"name": "p", "tasks": []}}}
    assert identity_differences(old, resolved) == ["protocol: 'p' (content sha256 1…) → 'p' (content sha256 2…)"]
    assert identity_differences(old, {"protocol": {"name": "p", "sha256": "1", "resolved": {"tasks": []}}}) == []


def test_identity_is_one_table_and_a_new_manifest_field_joins_it():
    assert [f.name for f in IDENTITY_FIELDS][:3] == ["protocol", "sample data", "model"]
    old = {"protocol": {"name": "p", "sha256": "1"}, "noise_order": "reference"}
    new = {**old, "noise_order": "per-image"}
    assert resume_identity(old)["noise order"] == "reference"
    assert identity_differences(old, new) == ["noise order: reference → per-image"]


# ------------------------------------------------------------------------------------ --resume without --run-dir
class _StopAfterOne:
    def start_task(self, task, total, done): ...

    def end_task(self, task): ...

    def record(self, record):
        raise KeyboardInterrupt


def _interrupted(protocol, root, run_dir, **kwargs) -> None:
    with pytest.raises(KeyboardInterrupt):
        run_protocol(RunConfig(protocol=str(protocol), model="input", data_root=root, run_dir=run_dir, device="cpu",
                               **kwargs), progress=_StopAfterOne())


def test_resume_without_run_dir_continues_the_newest_unfinished_run_of_the_same_setup(tiny, tmp_path):
    protocol, root = tiny
    runs = tmp_path / "runs"
    _interrupted(protocol, root, runs / "0-older")
    _interrupted(protocol, root, runs / "1-newest")
    _run(protocol, root, runs / "2-complete")
    _interrupted(protocol, root, runs / "3-other-convention", convention="M2")
    outcome = run_protocol(RunConfig(protocol=str(protocol), model="input", data_root=root, runs_root=runs,
                                     device="cpu", resume=True))
    assert outcome.run_dir == runs / "1-newest" and outcome.manifest["status"] == "complete"
    assert load_run(runs / "0-older").manifest["status"] == "interrupted"
    assert load_run(runs / "3-other-convention").manifest["status"] == "interrupted"
    assert sorted(p.name for p in runs.iterdir()) == ["0-older", "1-newest", "2-complete", "3-other-convention"]


def test_resume_without_run_dir_and_no_matching_run_says_so_and_starts_nothing(tiny, tmp_path):
    protocol, root = tiny
    runs = tmp_path / "runs"
    _run(protocol, root, runs / "done")
    _run(protocol, root, runs / "m2", convention="M2", limit=1)
    with pytest.raises(ResumeError, match=f"no unfinished run of this setup under {runs}"):
        run_protocol(RunConfig(protocol=str(protocol), model="input", data_root=root, runs_root=runs, device="cpu",
                               resume=True))
    assert sorted(p.name for p in runs.iterdir()) == ["done", "m2"]


# ---------------------------------------------------------------------------------------------- random weights
def test_a_registered_model_without_checkpoint_on_real_data_is_refused_naming_its_official_files(tiny, tmp_path):
    protocol, root = tiny
    built = []
    with pytest.raises(MissingWeightsError, match=r"'mirage-t' has no checkpoint.*5Deg_tiny\.ckpt.*--random-weights"):
        run_protocol(RunConfig(protocol=str(protocol), model="mirage-t", data_root=root, run_dir=tmp_path / "r",
                               device="cpu"), on_model=built.append)
    assert built == [] and not (tmp_path / "r").exists()


def test_cli_refuses_random_weights_on_folders_in_one_line(tmp_path):
    _pairs(tmp_path / "d")
    result = runner.invoke(app, ["run", "--model", str(EXAMPLES / "tiny-unet.yaml"), "--input-dir",
                                 str(tmp_path / "d" / "in"), "--target-dir", str(tmp_path / "d" / "gt"),
                                 "--run-dir", str(tmp_path / "r"), "--device", "cpu"])
    assert result.exit_code == 2 and "--random-weights" in result.output and "Traceback" not in result.output


def test_random_weights_are_seeded_so_the_same_command_gives_the_same_numbers(tmp_path):
    _pairs(tmp_path / "d", size=48)
    protocol = folder_protocol(tmp_path / "d" / "in", tmp_path / "d" / "gt")

    def psnr(name: str, seed: int) -> float:
        outcome = run_protocol(RunConfig(protocol=protocol, model=str(EXAMPLES / "tiny-unet.yaml"), device="cpu",
                                         run_dir=tmp_path / name, random_weights=True, seed=seed))
        assert outcome.manifest["random_weights"] is True and outcome.manifest["init_seed"] == seed
        assert any("seed" in notice for notice in outcome.notices)
        return float(outcome.summary.loc["folder", "psnr"])

    assert psnr("first", 0) == psnr("second", 0) != psnr("third", 1)


def test_resume_with_a_run_dir_that_holds_no_run_starts_it_there_and_says_so(tiny, tmp_path):
    protocol, root = tiny
    outcome = _run(protocol, root, tmp_path / "fresh", resume=True)
    assert outcome.manifest["status"] == "complete" and outcome.run_dir == tmp_path / "fresh"
    assert any("held no run yet" in notice for notice in outcome.notices)
