"""Errors reach the user as one line naming the file or option: file-system faults, bad card args, bad manifests,
and anything unexpected (with a hint that `--debug` shows the traceback)."""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from bench_ir.atomic import append_line
from bench_ir.cli import app
from bench_ir.data.sample import load_sample_photo
from bench_ir.results import RunStore

runner = CliRunner()
SAMPLE_RUN = ["run", "--protocol", "5deg", "--sample", "--model", "input", "--limit", "1", "--task", "denoise-25"]


def _error_lines(result) -> list[str]:
    assert "Traceback" not in result.output
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def _refused_before_any_run(tmp_path: Path, args: list[str]) -> str:
    """The one error line of `bench-ir ARGS --runs-root tmp_path/runs` (exit code 2), without its 'error: ', after
    checking that no run directory was made."""
    result = runner.invoke(app, [*args, "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result)
    assert not (tmp_path / "runs").exists()
    return line.removeprefix("error: ")


def test_a_run_dir_below_a_file_is_one_line_naming_the_path(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = runner.invoke(app, [*SAMPLE_RUN, "--run-dir", str(tmp_path / "afile" / "sub")])
    assert result.exit_code == 2
    assert _error_lines(result) == [f"error: {tmp_path / 'afile' / 'sub'}: a part of this path is a file, not a folder"]


def test_an_unknown_model_arg_is_one_line_before_any_run_directory_exists(tmp_path):
    result = runner.invoke(app, [*SAMPLE_RUN, "--model", "examples/tiny-unet.yaml", "--model-arg", "foo=1",
                                 "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2
    (line,) = _error_lines(result)
    assert "examples/tiny-unet.yaml" in line and "unknown argument(s) foo" in line and "accepts: width" in line
    assert not (tmp_path / "runs").exists()


def _finished_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "runs" / "good"
    result = runner.invoke(app, [*SAMPLE_RUN, "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.mark.parametrize("options, message", [
    (["--limit", "0"], "--limit must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--workers", "-1"], "--workers must be 0 or more, got -1"),
    (["--tile", "0"], "--tile must be at least 1, got 0"),
    (["--tile", "64", "--tile-overlap", "-4"], "tile overlap must be 0 or more pixels, got -4"),
    (["--model", "mirage-t", "--tile", "30"],
     "tile overlap 32 must be smaller than the tile size 24 (30 pixels fitted to a multiple of 8): give a smaller "
     "tile_overlap (--tile-overlap, 32 by default) or a larger tile (--tile)"),
    (["--pad", "bogus"], "--pad bogus: choose one of reflect, replicate, constant, none"),
])
def test_an_impossible_count_is_refused_before_any_run_directory_exists(tmp_path, options, message):
    """Not silently replaced (a batch size of 0 used to mean 1, a limit of 0 gave a 'complete' run of no images)."""
    assert _refused_before_any_run(tmp_path, [*SAMPLE_RUN, *options]) == message


@pytest.mark.parametrize("content, reason", [
    ("[]", "expected a JSON object, got []"),
    ("null", "expected a JSON object, got null"),
    ('{"run_id": "x", "protoc', "truncated or invalid JSON"),
    ('{"bad\n', "invalid JSON: Invalid control character at line 1 column 6)"),  # not 'at at'
])
def test_a_bad_manifest_is_one_line_naming_the_file(tmp_path, content, reason):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(content)
    result = runner.invoke(app, ["export", str(bad)])
    assert result.exit_code == 2
    (line,) = _error_lines(result)
    assert str(bad / "manifest.json") in line and reason in line


def test_one_bad_manifest_does_not_hide_the_other_runs_from_list_runs(tmp_path):
    _finished_run(tmp_path)
    for name, content in (("empty", "[]"), ("torn", '{"run_id": ')):
        (tmp_path / "runs" / name).mkdir()
        (tmp_path / "runs" / name / "manifest.json").write_text(content)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["list", "runs", "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    rows: dict[str, str] = {}  # run name -> the text of its table row (a row spans two or more lines)
    name = None
    for line in (line for line in result.output.splitlines() if line.count("│") > 3):
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells[1]:  # a row's first line has the status
            name = cells[0]
        rows[name] = rows.get(name, "") + " " + " ".join(cells)
    assert "complete" in rows["good"] and "input · 5deg · sample · limit 1" in rows["good"]
    assert "unreadable" in rows["empty"] and "expected a JSON object" in rows["empty"]
    assert "unreadable" in rows["torn"] and "truncated or invalid JSON" in rows["torn"]


def test_a_full_disk_while_appending_a_record_names_the_records_file(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    store = RunStore(tmp_path / "run")
    with pytest.raises(OSError) as err:
        store.append({"task": "t", "image": "a.png"})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "run" / "records.jsonl")
    with pytest.raises(OSError, match="No space left"):
        append_line(tmp_path / "other.txt", "x\n")


def test_an_unexpected_error_is_one_line_with_the_debug_hint_and_debug_shows_it(tmp_path):
    (tmp_path / "broken.py").write_text("from torch import nn\n\nclass Broken(nn.Module):\n"
                                        "    def forward(self, x):\n        return x / (1 // 0)\n")
    card = tmp_path / "broken.yaml"
    card.write_text(yaml.safe_dump({"name": "broken", "display_name": "Broken", "factory": "broken:Broken"}))
    args = ["run", "--protocol", "5deg", "--sample", "--model", str(card), "--limit", "1", "--task", "denoise-25",
            "--runs-root", str(tmp_path / "runs")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert _error_lines(result) == ["error: unexpected ZeroDivisionError: integer division or modulo by zero (run "
                                    "`bench-ir --debug ...` for the traceback)"]
    debug = runner.invoke(app, ["--debug", *args])
    assert isinstance(debug.exception, ZeroDivisionError)


# ------------------------------------------------------------------------ real read-only and full file systems
def _mount_namespace_available() -> str | None:
    """None when this process may make a private mount namespace with a tmpfs in it, else why not."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return "needs Linux and unshare(1)"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o ro,size=4k tmpfs /mnt"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return ("cannot mount a tmpfs in a private mount namespace (unshare -m needs CAP_SYS_ADMIN or user "
                f"namespaces): {probe.stderr.strip()[:200]}")
    return None


_NO_NAMESPACE = _mount_namespace_available()
needs_mount = pytest.mark.skipif(_NO_NAMESPACE is not None, reason=str(_NO_NAMESPACE))


def _run_on_tmpfs(tmp_path: Path, options: str) -> subprocess.CompletedProcess:
    """`bench-ir run` with --runs-root on a tmpfs mounted with ``options`` in a private mount namespace (the mount
    disappears with the process; nothing outside it changes)."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    command = shlex.join([sys.executable, "-m", "bench_ir", *SAMPLE_RUN, "--runs-root", str(mount)])
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o {options} tmpfs {mount} && exec {command}"],
                          capture_output=True, text=True, timeout=300, env=env)


@needs_mount
def test_a_read_only_file_system_is_one_line_naming_the_run_directory(tmp_path):
    done = _run_on_tmpfs(tmp_path, "ro,size=64k")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(errors) == 1 and str(tmp_path / "mnt") in errors[0]
    assert "read-only file system; choose a writable --run-dir/--runs-root/--out" in errors[0]


@needs_mount
def test_a_full_disk_is_one_line_naming_the_file_being_written(tmp_path):
    done = _run_on_tmpfs(tmp_path, "size=4k")  # one page: the manifest (several kB) does not fit
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(errors) == 1 and "manifest.json: no space left on device" in errors[0]
    assert str(tmp_path / "mnt") in errors[0]



@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="running as root: chmod does not stop root from writing (CAP_DAC_OVERRIDE); the read-only "
                           "tmpfs test above covers an unwritable runs root")
def test_an_unwritable_runs_root_is_one_line_naming_the_run_directory(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    try:
        result = runner.invoke(app, [*SAMPLE_RUN, "--runs-root", str(runs)])
    finally:
        runs.chmod(0o755)
    assert result.exit_code == 2
    (line,) = _error_lines(result)
    assert str(runs) in line and line.endswith("permission denied")


def test_list_runs_at_80_columns_shows_each_run_name_whole(tmp_path):
    """The run name is what `report --runs` and `compare` take: never cut, also on an 80-column terminal."""
    names = ["20261130-191628-restormer-biasfree-5deg-sample", "good"]
    for name in names:
        result = runner.invoke(app, [*SAMPLE_RUN, "--run-dir", str(tmp_path / "runs" / name)])
        assert result.exit_code == 0, result.output
    listed = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["list", "runs", "--runs-root", str(tmp_path / "runs")])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    first_cells = [line.split("│")[1].strip() for line in lines if line.count("│") > 3]
    assert all(name in first_cells for name in names)
    assert "input · 5deg · sample · limit 1 · 1 of 7 tasks" in first_cells  # SAMPLE_RUN scores one task


def test_list_runs_shows_the_mean_of_a_one_task_run_without_an_average(tmp_path):
    inputs, targets = tmp_path / "in", tmp_path / "gt"
    for folder, image in ((targets, load_sample_photo("chelsea")[:64, :64]),
                          (inputs, load_sample_photo("chelsea")[:64, :64] // 2)):
        folder.mkdir()
        Image.fromarray(image).save(folder / "chelsea.png")
    result = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(inputs), "--target-dir", str(targets),
                                 "--run-dir", str(tmp_path / "runs" / "pair")])
    assert result.exit_code == 0, result.output
    listed = CliRunner(env={"COLUMNS": "120"}).invoke(app, ["list", "runs", "--runs-root", str(tmp_path / "runs")])
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith("│ pair ")]
    psnr, ssim = (cell.strip() for cell in row.split("│")[4:6])
    assert float(psnr) > 0 and 0 < float(ssim) <= 1


def test_list_runs_says_when_there_is_no_run_and_when_the_folder_does_not_exist(tmp_path):
    (tmp_path / "empty").mkdir()
    wide = CliRunner(env={"COLUMNS": "300"})  # one line whatever the length of tmp_path
    empty = wide.invoke(app, ["list", "runs", "--runs-root", str(tmp_path / "empty")])
    missing = wide.invoke(app, ["list", "runs", "--runs-root", str(tmp_path / "nope")])
    assert empty.exit_code == missing.exit_code == 0
    assert empty.stdout.strip() == f"no runs in {tmp_path / 'empty'}"
    assert missing.stdout.strip().startswith(f"no runs in {tmp_path / 'nope'} (no such folder")


@pytest.mark.parametrize("options, message", [
    (["--protocol", "5deg", "--pairing", "sots"],
     "--pairing applies to --input-dir/--target-dir (a protocol pairs its files by its layouts)"),
    (["--protocol", "5deg", "--input-dir", "IN", "--target-dir", "GT"],
     "--protocol and --input-dir/--target-dir are two ways to choose the images; give one"),
    (["--sample", "--input-dir", "IN", "--target-dir", "GT"],
     "--sample and --input-dir/--target-dir are two ways to choose the images; give one"),
])
def test_options_for_another_way_of_choosing_the_images_are_errors_not_ignored(tmp_path, options, message):
    options = [str(tmp_path / option) if option in ("IN", "GT") else option for option in options]
    assert _refused_before_any_run(tmp_path, ["run", "--model", "input", *options]) == message


@pytest.mark.parametrize("options, message", [
    (["--lpips-net", "vgg"], "--lpips-net and --lpips-weights apply with --lpips (LPIPS is scored only when asked)"),
    (["--lpips-weights", "w.pth"], "--lpips-net and --lpips-weights apply with --lpips (LPIPS is scored only when "
                                   "asked)"),
    (["--model", "mirage-t", "--checkpoint", "w.safetensors", "--random-weights"],
     "--random-weights allows a model without a checkpoint; it cannot run with --checkpoint w.safetensors"),
])
def test_an_option_that_would_be_ignored_is_an_error(tmp_path, options, message):
    assert _refused_before_any_run(tmp_path, [*SAMPLE_RUN, *options]) == message


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--limit", "abc"], "'abc' is not a valid int"),
    (["run", "--bogus"], "No such option: --bogus"),
    (["compare"], "Missing argument"),
    (["list", "things"], "'things' is not one of"),
], ids=["bad-int", "unknown-option", "missing-argument", "bad-choice"])
def test_a_usage_error_is_clicks_usage_message_with_exit_code_2_not_an_unexpected_error(args, message):
    """typer >= 0.26 raises its own copy of click's exceptions; they must not fall into the catch-all."""
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Usage: " in result.output
    assert "unexpected" not in result.output


def test_the_cli_imports_without_click_where_typer_does_not_need_it():
    """A core install with typer >= 0.26 has no click (nothing in the core requires it)."""
    code = ("import sys; sys.modules['click'] = None\n"
            "try:\n    import typer.core\nexcept ImportError:\n    sys.exit(3)\n"
            "import bench_ir.cli")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if done.returncode == 3:
        pytest.skip("this typer runs on click")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("command", [SAMPLE_RUN, ["profile", "--model", "input"]], ids=["run", "profile"])
def test_an_unknown_device_is_one_line_naming_the_choices_not_torchs_list_of_device_types(command):
    result = runner.invoke(app, [*command, "--device", "gpu"], terminal_width=200)
    assert result.exit_code == 2
    assert _error_lines(result) == ["error: unknown device 'gpu'; give auto, cpu, cuda or cuda:N (any torch device "
                                    "string)"]



def test_a_reader_that_stops_reading_ends_the_command_quietly(monkeypatch):
    """`bench-ir list protocols --details | head -30`: when stdout's reader leaves while a command writes, the command
    stops with exit code 1 and no error line, as click does (it printed `error: a file: Broken pipe`, exit code 2)."""
    from bench_ir import listing

    def closed_pipe():
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(listing, "conventions_table", closed_pipe)
    result = runner.invoke(app, ["list", "conventions"])
    assert result.exit_code == 1
    assert "error" not in result.output


def test_a_torch_compile_failure_is_named_with_the_option_that_avoids_it():
    from bench_ir.cli import unexpected_error_message

    inductor_error = type("InductorError", (RuntimeError,), {"__module__": "torch._inductor.exc"})
    try:
        try:
            raise inductor_error("CppCompileError: C++ compile error\n" + "generated code line\n" * 500)
        except RuntimeError as inner:
            raise RuntimeError("the training step failed") from inner
    except RuntimeError as err:
        message = unexpected_error_message(err)
    assert message.startswith("torch.compile failed: InductorError: CppCompileError: C++ compile error; --compile off")
    assert "generated code line" not in message


def test_any_other_unexpected_error_is_one_line_with_the_debug_hint():
    from bench_ir.cli import unexpected_error_message

    message = unexpected_error_message(ZeroDivisionError("division by zero"))
    assert message == "unexpected ZeroDivisionError: division by zero (run `bench-ir --debug ...` for the traceback)"
