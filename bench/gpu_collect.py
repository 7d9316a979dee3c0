"""After a GPU window: the files bench/gpu_check.sh returned, made into bench/RESULTS.md sections and
bench/results/*.json, and the sample checkpoint it trained judged against the input and the shipped one.

    python bench/gpu_collect.py FILES_AT            # RESULTS.md sections + results/*.json (bench/ only)
    python bench/gpu_collect.py FILES_AT --score    # + scores the trained sample checkpoint (5deg --sample, ~3 min)
    python bench/gpu_collect.py OUTDIR --rehearsal --out-dir D     # a rehearsal's files, written into D only

What it writes, for a GPU run: one section "GPU window on <device> (<date>)" with every part's exit status and
seconds (summary.json) and the CUDA correctness tests (cuda-tests.xml: outcome, seconds and the recorded figures of
each test), then the profile and speed sections as the scripts wrote them (the speed one ends with the targets
table, bench/_targets.py); the profile, speed and parsed test JSON go to bench/results/. It refuses rehearsal files
(named ``rehearsal-*`` or with ``"rehearsal": true``) unless ``--rehearsal`` is given, and then writes only into
``--out-dir``. The sample-train.tar is unpacked into ``--work-dir``; ``--score`` evaluates it (MIRAGE-T, fp16
weights) beside ``--model input`` and the shipped checkpoint on ``bench-ir run --protocol 5deg --sample`` on this
machine's CPU and says whether it may ship: a complete training, better than the input on every task, and a better
average than the shipped checkpoint. Shipping itself (the lineage move, README and docs) stays a reviewed step:
bench/README.md, "After a GPU run"."""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NAMED = r"(rehearsal-)?(profile|speed)(-quick)?-(?P<slug>.+)-(?P<date>\d{4}-\d{2}-\d{2})"  # _output.write_results


class CollectError(ValueError):
    """The returned files cannot be collected as asked (the message says why and what to do)."""


# -------------------------------------------------------------------------------------------------- the files
@dataclass
class WindowFiles:
    """The files of one gpu_check.sh run (any of them may be missing: a run cut short returns what it wrote)."""

    folder: Path
    rehearsal: bool
    summary: Path | None
    log: Path | None
    tests: Path | None
    profile: Path | None
    speed: Path | None
    train: Path | None
    damaged: list[str] = field(default_factory=list)  # "name: why" of files that came back but cannot be read

    @cached_property
    def test_cases(self) -> list[dict[str, Any]] | None:
        """The CUDA test report parsed once (:func:`read_junit`); None when it did not come back."""
        return read_junit(self.tests) if self.tests is not None else None

    def markdown_of(self, json_path: Path | None) -> str | None:
        md = json_path.with_suffix(".md") if json_path is not None else None
        return md.read_text(encoding="utf-8") if md is not None and md.is_file() else None


def find_window_files(folder: str | Path, rehearsal: bool = False) -> WindowFiles:
    """The files gpu_check.sh writes into its output folder, by name (``rehearsal-`` prefixed for a rehearsal).
    Refuses a rehearsal's files unless ``rehearsal`` is set, and a folder holding none of the expected files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CollectError(f"{folder}: no such folder (give the run tool's files_at)")
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    prefix = "rehearsal-" if rehearsal else ""
    if not rehearsal and names and all(n.startswith("rehearsal-") for n in names):
        raise CollectError(f"{folder} holds a rehearsal's files (rehearsal-*): they are not measurements; pass "
                           "--rehearsal --out-dir D to check the collection itself")

    def one(name: str) -> Path | None:
        path = folder / f"{prefix}{name}"
        return path if path.is_file() else None

    def newest(kind: str) -> Path | None:
        found = [folder / n for n in names if n.startswith(f"{prefix}{kind}-") and n.endswith(".json")]
        return found[-1] if found else None

    files = WindowFiles(folder, rehearsal, one("summary.json"), one("gpu_check.log"), one("cuda-tests.xml"),
                        newest("profile"), newest("speed"), one("sample-train.tar"))
    for attribute in ("summary", "tests", "profile", "speed", "train"):  # a part cut mid-write leaves a torn file
        path = getattr(files, attribute)
        why = _unreadable(path) if path is not None else None
        if why is not None:
            files.damaged.append(f"{path.name}: {why}")
            setattr(files, attribute, None)
    if not any([files.summary, files.tests, files.profile, files.speed, files.train]):
        damaged = f"; damaged: {'; '.join(files.damaged)}" if files.damaged else ""
        raise CollectError(f"{folder}: none of gpu_check.sh's files ({prefix}summary.json, {prefix}cuda-tests.xml, "
                           f"{prefix}profile-*.json, {prefix}speed-*.json, {prefix}sample-train.tar){damaged}")
    for path in (files.summary, files.profile, files.speed):
        if path is not None and json.loads(path.read_text())["rehearsal"] and not rehearsal:
            raise CollectError(f"{path} says it is a rehearsal: not a measurement")
    return files


def _unreadable(path: Path) -> str | None:
    """Why a returned file cannot be read (a JSON that does not parse, a JUnit report that is no whole XML document,
    a tar archive cut short), or None when it reads."""
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".xml":
            ET.parse(path)
        elif path.suffix == ".tar":
            with tarfile.open(path) as tar:
                for member in tar:  # every header, and every member's data read through to the end
                    if member.isfile():
                        tar.extractfile(member).read()
    except (OSError, ValueError, ET.ParseError, tarfile.TarError, EOFError) as err:
        return f"{type(err).__name__}: {err}"
    return None


# ------------------------------------------------------------------------------------------------ the parts
def parts_markdown(summary: dict[str, Any]) -> str:
    """The summary.json of gpu_check.sh as a table: every part's exit status, seconds and cap."""
    lines = ["| part | exit status | seconds | cap (s) | note |", "|---|---:|---:|---:|---|"]
    for name, part in summary.get("parts", {}).items():
        lines.append(f"| {name} | {part['exit_status']} | {part['seconds']} | {part['cap_s']} | {part['note']} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- CUDA correctness
def read_junit(path: str | Path) -> list[dict[str, Any]]:
    """Every test case of a JUnit XML report: name, outcome (passed, failed, error, skipped), seconds, the message
    of a failure, error or skip, and the ``record_property`` figures (Python literals where they parse, else
    the text)."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = element.get("message") or next(iter((element.text or "").strip().splitlines()), "")
                break
        properties = {}
        for prop in case.iter("property"):
            value = prop.get("value", "")
            try:  # record_property writes str(value): Python literals
                properties[prop.get("name")] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                properties[prop.get("name")] = value
        cases.append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0.0),
                      "message": message, "properties": properties})
    return cases


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_figure(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_figure(v) for v in value) + "]"
    return str(value)


def cuda_markdown(cases: list[dict[str, Any]]) -> str:
    """The CUDA tests as a count line and a table (outcome, seconds, recorded figures or the failure message)."""
    counts = {o: sum(c["outcome"] == o for c in cases) for o in ("passed", "failed", "error", "skipped")}
    head = ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "no tests"
    lines = [f"{head} (`pytest -m cuda tests/test_cuda.py`).", "", "| test | outcome | s | figures |",
             "|---|---|---:|---|"]
    for case in cases:
        figures = "; ".join(f"{k} {_figure(v)}" for k, v in case["properties"].items())
        if case["outcome"] != "passed":
            figures = "; ".join(x for x in (figures, case["message"].replace("|", "/")[:200]) if x)
        outcome = case["outcome"] if case["outcome"] in ("passed", "skipped") else f"**{case['outcome'].upper()}**"
        lines.append(f"| {case['name']} | {outcome} | {case['seconds']:.1f} | {figures} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- collection
def _device_and_date(files: WindowFiles) -> tuple[str, str, str]:
    """(device name, device slug, date) from the profile or speed JSON (their file names end in slug-date), else from
    gpu_check.log (its first line ends with the start time, its setup prints ``torch <v> cuda True <device>``): a
    window cut before the profile and speed parts ended still gets its device's name."""
    for path in (files.speed, files.profile):
        named = re.fullmatch(NAMED, path.stem) if path is not None else None
        if named:
            return str(json.loads(path.read_text())["device"]["name"]), named["slug"], named["date"]
    log = files.log.read_text(encoding="utf-8", errors="replace") if files.log is not None else ""
    device = re.search(r"^torch \S+ cuda True (.+?)\s*$", log, re.MULTILINE)
    started = re.search(r"^gpu_check: .*, (\d{4}-\d{2}-\d{2})T", log, re.MULTILINE)
    name = device.group(1) if device else "unknown device"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()  # as bench/_output.device_slug
    return name, slug, started.group(1) if started else "unknown-date"


def collect(files: WindowFiles, results_md: Path = HERE / "RESULTS.md", results_dir: Path = HERE / "results",
            out_dir: Path | None = None) -> list[Path]:
    """Write the window's sections and JSON: into ``results_md`` / ``results_dir`` for a GPU run, into ``out_dir``
    only (``rehearsal-RESULTS.md``, ``rehearsal-*.json``) for a rehearsal. Returns the files written. Refuses to
    collect the same window twice (its JSON already in ``results_dir``)."""
    if files.rehearsal and out_dir is None:
        raise CollectError("a rehearsal is not a measurement: give --out-dir (bench/ is never written)")
    if files.rehearsal:
        results_md, results_dir = out_dir / "rehearsal-RESULTS.md", out_dir
    device, slug, date = _device_and_date(files)
    prefix = "rehearsal-" if files.rehearsal else ""
    copies = [p for p in (files.profile, files.speed) if p is not None]
    tests_json = results_dir / f"{prefix}cuda-tests-{slug}-{date}.json"
    outputs = [results_dir / p.name for p in copies] + ([tests_json] if files.tests is not None else [])
    clash = [path for path in outputs if path.exists()]
    if clash and not files.rehearsal:
        raise CollectError(f"already collected: {', '.join(map(str, clash))} exist(s)")
    written: list[Path] = []
    results_dir.mkdir(parents=True, exist_ok=True)
    title = f"## GPU window on {device} ({date})"
    if files.rehearsal:
        title = f"## REHEARSAL (not a measurement): GPU window on {device} ({date})"
    section = [title, ""]
    if files.summary is not None:
        section += ["`bash bench/gpu_check.sh`, its parts (exit 124/137: cut at its cap):", "",
                    parts_markdown(json.loads(files.summary.read_text()))]
    else:
        section += ["No readable summary.json came back: the run was cut before its first part ended.", ""]
    if files.damaged:
        section += ["Came back damaged, left out: " + "; ".join(f"`{line}`" for line in files.damaged), ""]
    section += ["### CUDA correctness", ""]
    if files.test_cases is not None:
        cases = files.test_cases
        tests_json.write_text(json.dumps({"device": device, "rehearsal": files.rehearsal, "tests": cases},
                                         indent=2) + "\n")
        written.append(tests_json)
        where = f"bench/results/{tests_json.name}" if results_dir == HERE / "results" else tests_json.name
        section += [cuda_markdown(cases) + f"\nraw figures: `{where}`", ""]
    else:
        section += ["No readable cuda-tests.xml came back (the tests part did not end).", ""]
    for path in copies:
        if path.parent.resolve() != results_dir.resolve():
            shutil.copyfile(path, results_dir / path.name)
            written.append(results_dir / path.name)
        markdown = files.markdown_of(path)
        if markdown:
            section.append(markdown.rstrip() + "\n")
    with open(results_md, "a", encoding="utf-8") as handle:
        handle.write("\n".join(section).rstrip() + "\n\n")
    written.append(results_md)
    return written


def profile_mismatches(files: WindowFiles) -> list[str]:
    """Models whose params or FLOPs on the device differ from bench/results/cpu-params-flops.json."""
    if files.profile is None:
        return []
    reference = json.loads(files.profile.read_text())["results"].get("cpu_reference", {})
    return sorted(name for name, check in reference.items() if check.get("status") not in ("equal", "no reference"))


# ------------------------------------------------------------------------------------------- sample checkpoint
def unpack_sample_training(files: WindowFiles, work_dir: Path) -> dict[str, Any] | None:
    """Unpack sample-train.tar into ``work_dir``; returns its training manifest (None without a tar)."""
    if files.train is None:
        return None
    work_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(files.train) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: no links or paths out of work_dir
            tar.extractall(work_dir, filter="data")
        else:
            tar.extractall(work_dir)
    manifest = work_dir / "mirage-t-sample.train-manifest.json"
    return json.loads(manifest.read_text()) if manifest.is_file() else None


def sample_verdict(candidate: dict[str, float], input_psnr: dict[str, float], shipped: dict[str, float],
                   status: str | None) -> tuple[bool, list[str]]:
    """Whether a sample checkpoint may replace the shipped one: its training is complete, its PSNR beats
    ``--model input`` on every task of the sample protocol, and its average beats the shipped checkpoint's.
    Arguments: per-task PSNR (dB) with an ``Average`` entry. Returns (ships, the reasons it does not)."""
    tasks = [task for task in input_psnr if task != "Average"]
    reasons = []
    if status != "complete":
        reasons.append(f"the training is {status or 'missing'}, not complete")
    reasons += [f"{task}: {candidate[task]:.2f} dB, not above the input's {input_psnr[task]:.2f}"
                for task in tasks if candidate[task] <= input_psnr[task]]
    if candidate["Average"] <= shipped["Average"]:
        reasons.append(f"average {candidate['Average']:.2f} dB, not above the shipped {shipped['Average']:.2f}")
    return not reasons, reasons


def score_sample(weights: Path, work_dir: Path) -> dict[str, dict[str, float]]:
    """Per-task PSNR of ``weights``, of ``--model input`` and of the shipped checkpoint on 5deg --sample (CPU)."""
    from bench_ir.cards import get_card
    from bench_ir.resources import registry_dir
    from bench_ir.runner import RunConfig, run_protocol

    shipped = registry_dir() / get_card("mirage-t").default_checkpoint
    scores = {}
    for label, model, checkpoint in (("candidate", "mirage-t", weights), ("input", "input", None),
                                     ("shipped", "mirage-t", shipped)):
        outcome = run_protocol(RunConfig(protocol="5deg", model=model, checkpoint=checkpoint, sample=True,
                                         device="cpu", run_dir=work_dir / f"eval-{label}"))
        scores[label] = {**{task: float(value) for task, value in outcome.summary["psnr"].items()},
                         "Average": float(outcome.average["psnr"])}
    return scores


def scores_markdown(scores: dict[str, dict[str, float]]) -> str:
    columns = list(next(iter(scores.values())))  # the protocol's tasks, then Average
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for label, row in scores.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------------- command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the files gpu_check.sh returned (the run tool's files_at)")
    parser.add_argument("--rehearsal", action="store_true", help="the folder holds a rehearsal (needs --out-dir)")
    parser.add_argument("--out-dir", type=Path, help="write here only (required for a rehearsal)")
    parser.add_argument("--work-dir", type=Path, help="where sample-train.tar is unpacked and scored "
                        "(default: a new temporary folder)")
    parser.add_argument("--score", action="store_true", help="score the trained sample checkpoint (CPU)")
    args = parser.parse_args(argv)
    try:
        files = find_window_files(args.folder, args.rehearsal)
        out_dir = args.out_dir
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        if out_dir is not None and not files.rehearsal:
            written = collect(files, out_dir / "RESULTS.md", out_dir)
        else:
            written = collect(files, out_dir=out_dir)
    except CollectError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("wrote:\n" + "\n".join(f"  {p}" for p in written))
    status = 0
    for line in files.damaged:
        print(f"damaged, left out: {line}")
        status = 1
    mismatched = profile_mismatches(files)
    if mismatched:
        print(f"params or FLOPs differ from the CPU figures: {', '.join(mismatched)}")
        status = 1
    if files.test_cases is not None:
        failed = [c["name"] for c in files.test_cases if c["outcome"] in ("failed", "error")]
        if failed:
            print(f"CUDA tests not passed: {', '.join(failed)}")
            status = 1
    if files.speed is not None:
        data = json.loads(files.speed.read_text())["results"]
        decision = (data.get("protocol") or {}).get("decision") or {}
        why = f"; {decision['note']}" if decision.get("note") else ""
        print(f"CUDA default by measurement: {decision.get('default') or 'not decided'}{why}")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="gpu-collect-"))
    manifest = unpack_sample_training(files, work_dir)
    if manifest is None:
        print("no sample training came back")
        return status
    print(f"sample training: {manifest['status']}, {manifest['steps_done']} of {manifest['steps_target']} steps; "
          f"unpacked into {work_dir}")
    if args.score:
        scores = score_sample(work_dir / "mirage-t-sample.safetensors", work_dir)
        ships, reasons = sample_verdict(scores["candidate"], scores["input"], scores["shipped"], manifest["status"])
        print(scores_markdown(scores))
        print("ships: yes (bench/README.md, 'After a GPU run', says how)" if ships
              else "ships: no: " + "; ".join(reasons))
    return status


if __name__ == "__main__":
    sys.exit(main())
