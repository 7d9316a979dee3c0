"""Fixtures shared by several test modules."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench_ir.data.synthesis import gaussian_noise_uint8

_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# model_args of the smallest MIRAGE the training tests build (fast on a CPU; not a card's size), and the train()
# options they share: that model on 16 px patches, batch 2, no workers, no validation, no TensorBoard
TINY_MIRAGE_ARGS = {"dim": 6, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1}
FAST_TRAINING = {"device": "cpu", "batch_size": 2, "patch_size": 16, "model_args": TINY_MIRAGE_ARGS, "num_workers": 0,
                 "validate": False, "tensorboard": False}


# process groups of the jobs tests start in a session of their own (popen_in_own_session): such a job is not in
# pytest's process group, so nothing else would stop a job a failing test left behind, or one of a stopped pytest
_OWN_SESSION_GROUPS: list[int] = []


def _die_with_the_parent() -> None:
    """In the new job's process: ask Linux for SIGKILL when its parent (pytest) exits (prctl PR_SET_PDEATHSIG)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def popen_in_own_session(command: list[str], **options) -> subprocess.Popen:
    """``subprocess.Popen(command, **options)`` in a session and process group of its own, as a scheduler or a shell
    starts a job: a signal sent to its group reaches nothing else. Its whole group is killed (SIGKILL) at the end of
    the test that started it (a job the test waited for is long gone) and when pytest exits; the job's own process is
    also killed when pytest is killed (SIGTERM, SIGKILL), so no job runs on beside later tests or after pytest."""
    process = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_the_parent, **options)
    _OWN_SESSION_GROUPS.append(process.pid)
    return process


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux: read from /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def kill_own_session_groups() -> None:
    """SIGKILL every process group started by :func:`popen_in_own_session` that still has a member."""
    while _OWN_SESSION_GROUPS:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(_OWN_SESSION_GROUPS.pop(), signal.SIGKILL)


atexit.register(kill_own_session_groups)


@pytest.fixture(autouse=True)
def no_job_outlives_its_test() -> Iterator[None]:
    yield
    kill_own_session_groups()


@pytest.fixture(scope="session")
def wide_tiny_unet(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A suite entry of the example tiny-unet card at width 48 (a few images per second on the CPU: slow enough to
    be stopped mid-cell) with random weights saved as its checkpoint, since a suite never runs random weights."""
    from safetensors.torch import save_file

    from bench_ir.checkpoints import create_model

    card = str(Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml")
    weights = tmp_path_factory.mktemp("wide-tiny-unet") / "tiny-unet-width48.safetensors"
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in create_model(card, width=48).state_dict().items()}, str(weights))
    return {"model": card, "model_args": {"width": 48}, "checkpoint": str(weights)}


@pytest.fixture
def card_with_sample(tmp_path) -> Path:
    """The tiny-unet example card (examples/) in a folder of its own, shipping its weights as the sample checkpoint."""
    folder = tmp_path / "card"
    folder.mkdir()
    for name in ("tiny_unet.py", "tiny-unet.safetensors"):
        shutil.copy(_EXAMPLES / name, folder / name)
    card = folder / "tiny-unet.yaml"
    card.write_text((_EXAMPLES / "tiny-unet.yaml").read_text() + "default_checkpoint: tiny-unet.safetensors\n")
    return card


@pytest.fixture(autouse=True)
def no_folders_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test decides its own data root and checkpoint folder: BENCH_IR_DATA_ROOT and BENCH_IR_CHECKPOINT_DIR
    of the machine running the tests are not read."""
    monkeypatch.delenv("BENCH_IR_DATA_ROOT", raising=False)
    monkeypatch.delenv("BENCH_IR_CHECKPOINT_DIR", raising=False)


@pytest.fixture(scope="session", autouse=True)
def no_cache_of_the_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never read or write the user's cache of file hashes (bench_ir.file_hashes): BENCH_IR_CACHE_DIR names a
    folder of the test session, from before the first module fixture runs (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_IR_CACHE_DIR", str(tmp_path_factory.mktemp("bench-ir-cache")))
        yield


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module: inputs in these tests are tiny, so a thread pool only costs time (most of
    all on a shared CPU), and bit-exact comparisons hold per thread setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def add_weight_noise(model: torch.nn.Module, seed: int, scale: float) -> torch.nn.Module:
    """Add N(0, scale^2) noise to every state_dict tensor in key order, drawn from a CPU generator seeded ``seed``
    (the recipe of the golden fixtures of PromptIR, AdaIR and Restormer); returns ``model``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(torch.randn(tensor.shape, generator=generator) * scale)
    return model


def reference_noisy_crops(folder: Path, names: list[str], sigma: int = 25) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The official denoising test loop written out, over ``names`` in the order given: centre crop to a multiple of
    16, seed 0 once, sigmas 15, 25, 50 in turn over the images, randn(H, W, 3) each, truncation to uint8. Returns
    ``{name: (clean crop, noisy crop at sigma)}``; the global NumPy RNG is restored after."""
    crops = {}
    for name in names:
        clean = np.array(Image.open(folder / name).convert("RGB"))
        height, width = clean.shape[:2]
        top, left = (height % 16) // 2, (width % 16) // 2
        crops[name] = clean[top:top + height // 16 * 16, left:left + width // 16 * 16]
    saved = np.random.get_state()
    try:
        np.random.seed(0)
        noisy = {}
        for s in (15, 25, 50):
            for name in names:
                noise = np.random.randn(*crops[name].shape)
                if s == sigma:
                    noisy[name] = gaussian_noise_uint8(crops[name], sigma, noise)
    finally:
        np.random.set_state(saved)
    return {name: (crops[name], noisy[name]) for name in names}


def write_one_pair_protocol(root: Path, name: str = "toy") -> Path:
    """A protocol file ``root/<name>.yaml`` (no published table) with one task 't' over one 32x32 pair under
    ``root/<name>/input`` and ``root/<name>/target``, the input the negative of the target."""
    for folder in (f"{name}/input", f"{name}/target"):
        (root / folder).mkdir(parents=True)
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / name / "target" / "a.png")
    Image.fromarray(255 - image).save(root / name / "input" / "a.png")
    protocol = {"name": name, "title": name, "version": 1, "convention": "M1",
                "crop": {"rule": "center_multiple", "base": 16},
                "tasks": [{"name": "t", "label": name, "dataset": name,
                           "layouts": [{"input": f"{name}/input", "target": f"{name}/target"}]}]}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(protocol), encoding="utf-8")
    return path


def write_sample_suite(folder: Path, name: str, protocols: list[str], entries: list[dict] | None = None,
                       limit: int = 1, **fields) -> Path:
    """The suite file ``folder/suite.yaml`` (``folder`` made if missing) of the suite ``name``: ``entries`` (default
    the ``input`` row) on ``protocols``, on the sample data on the CPU, ``limit`` images per task, no profile; each of
    ``fields`` replaces the top-level field of that name (``options``, ``profile``, ...)."""
    data = {"name": name, "protocols": protocols, "options": {"sample": True, "limit": limit, "device": "cpu"},
            "entries": entries if entries is not None else [{"model": "input"}], "profile": {"enabled": False},
            **fields}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def write_scored_run(run_dir: Path, tasks: list[dict], records: list[tuple[str, str, float, float]],
                     average: list[str] | None = None, protocol_name: str = "3deg", **manifest) -> Path:
    """A stored 3deg-table run with the given ``(task, image, psnr, ssim)`` records and manifest overrides, as the
    report and compare tests need it. ``average`` defaults to every task; it is what the run's Average is made of
    only for a ``protocol_name`` that is no shipped protocol's (a shipped one's Average is the protocol's own as it
    is now)."""
    from bench_ir.results import RunStore

    store = RunStore(run_dir)
    base = {"run_id": run_dir.name, "label": None, "created": "2026-01-01T00:00:00+00:00",
            "protocol": {"name": protocol_name, "tasks": tasks,
                         "average": [t["name"] for t in tasks] if average is None else average,
                         "leaderboard_table": "table1_3deg.csv"},
            "model": {"name": "toy", "display_name": "Toy", "params": 1000}, "checkpoint": None,
            "convention": {"name": "M1", "description": "skimage"}, "sample": False, "limit": None,
            "random_weights": False}
    store.write_manifest({**base, **manifest})
    store.extend({"task": task, "image": image, "psnr": psnr, "ssim": ssim, "lpips": None, "height": 8,
                  "width": 8, "seconds": 0.0, "nonfinite": False} for task, image, psnr, ssim in records)
    return run_dir


@pytest.fixture
def stored_pair_sets(tmp_path: Path):
    """``make(option, specs) -> [TrainingSet per spec]``: one stored (input, target) pair of astronaut (input
    ``photo // 2 + 60``) under ``tmp_path/pairs``, as a ``paired`` data entry of the sample recipe with its
    ``option`` (``brightness`` or ``contrast``) set to each of ``specs``; patch 32, seed 3."""
    import dataclasses

    from bench_ir.data.sample import load_sample_photo
    from bench_ir.train.data import build_training_set
    from bench_ir.train.recipes import DataSpec, load_recipe

    photo = load_sample_photo("astronaut")
    for folder, image in (("input", photo // 2 + 60), ("target", photo)):
        (tmp_path / "pairs" / folder).mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / "pairs" / folder / "astronaut.png")
    recipe = load_recipe("sample")
    stored = DataSpec(task="pairs", layout="paired", root="pairs", input="input", target="target")

    def make(option: str, specs: list) -> list:
        return [build_training_set(dataclasses.replace(recipe, data=[dataclasses.replace(stored, **{option: spec})]),
                                   tmp_path, 32, seed=3) for spec in specs]

    return make


def _torchrun_worker(agent_pid: int, rank: int) -> int:
    """The pid of torchrun's worker process of ``rank`` (Linux: read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == agent_pid and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no worker of rank {rank} under torchrun process {agent_pid}")


def signal_training_job(command: list[str], run_dir: Path, signum: int, env: dict[str, str] | None = None,
                        rank: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start the training ``command`` (writing ``run_dir``) in a process group of its own, wait until it has logged
    two steps, send ``signum`` to the whole group (as a scheduler or a terminal's Ctrl-C does), or with ``rank`` to
    that torchrun worker alone, and wait for the job to end; returns the process and its stderr."""
    process = popen_in_own_session(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    log, deadline = run_dir / "train_log.csv", time.monotonic() + 180
    while not (log.is_file() and len(log.read_text().splitlines()) > 2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no training step logged: {process.communicate()}")
        time.sleep(0.05)
    if rank is None:
        os.killpg(process.pid, signum)
    else:
        os.kill(_torchrun_worker(process.pid, rank), signum)
    _, err = process.communicate(timeout=120)
    return process, err
