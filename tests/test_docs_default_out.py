"""`bench-ir docs` without files writes the shipped protocols' pages into docs/protocols of the checkout beside the
bench_ir package, wherever it runs; an installed package without that folder asks for --out."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench_ir import cli, protocol_docs

runner = CliRunner(env={"COLUMNS": "400"})  # one line whatever the length of tmp_path


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder: not the checkout."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _package_in(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench_ir as if its package were ROOT/bench_ir."""
    monkeypatch.setattr(protocol_docs, "__file__", str(root / "bench_ir" / "protocol_docs.py"))


def test_without_out_the_pages_go_to_the_checkout_docs_protocols_wherever_docs_runs(tmp_path, monkeypatch, elsewhere):
    pages = tmp_path / "checkout" / "docs" / "protocols"
    pages.mkdir(parents=True)
    _package_in(tmp_path / "checkout", monkeypatch)
    result = runner.invoke(cli.app, ["docs"])
    assert result.exit_code == 0, result.output
    assert (pages / "README.md").is_file() and (pages / "5deg.md").is_file()
    assert not (elsewhere / "docs").exists()


def test_an_installed_package_without_docs_protocols_asks_for_out(tmp_path, monkeypatch, elsewhere):
    _package_in(tmp_path / "site-packages", monkeypatch)
    result = runner.invoke(cli.app, ["docs"])
    assert result.exit_code == 2
    assert "no docs/protocols folder beside its package" in result.output and "give --out FOLDER" in result.output
    assert not (elsewhere / "docs").exists() and not (tmp_path / "site-packages" / "docs").exists()
