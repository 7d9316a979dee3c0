"""The declarative folders (registry/, protocols/, reports/, suites/) are found from a clone and from a built wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench_ir.resources import leaderboard_dir, protocols_dir, registry_dir, reports_dir, resource_dir

ROOT = Path(__file__).resolve().parent.parent


def test_resources_are_found_in_a_clone():
    assert (registry_dir() / "mirage-t.yaml").is_file()
    assert (protocols_dir() / "5deg.yaml").is_file()
    assert any(reports_dir().glob("*.j2"))
    assert (leaderboard_dir() / "table2_5deg.csv").is_file()
    assert (resource_dir("suites") / "mirage-paper.yaml").is_file()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (path,) = out.glob("bench_ir-*.whl")
    return path


def test_wheel_carries_cards_protocols_templates_leaderboard_and_sample_weights(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("bench_ir/_resources/registry/mirage-t.yaml", "bench_ir/_resources/protocols/5deg.yaml",
                     "bench_ir/_resources/registry/leaderboard/table1_3deg.csv", "bench_ir/cli.py",
                     "bench_ir/_resources/registry/weights/mirage-t-sample.safetensors",
                     "bench_ir/_resources/suites/mirage-paper.yaml", "bench_ir/_resources/suites/sample.yaml"):
        assert expected in names, expected
    assert any(n.startswith("bench_ir/_resources/reports/") and n.endswith(".j2") for n in names)


def test_installed_wheel_finds_its_resources_outside_the_clone(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("import bench_ir.resources as r, bench_ir; print(r.registry_dir()); "
            "print(bench_ir.load_protocol('5deg').name); print(bench_ir.get_card('mirage-s').name); "
            "from bench_ir.suite import load_suite; print(load_suite('sample').name)")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    registry, protocol, card, suite = done.stdout.split()
    assert Path(registry).is_relative_to(tmp_path / "site")
    assert (protocol, card, suite) == ("5deg", "mirage-s", "sample")
