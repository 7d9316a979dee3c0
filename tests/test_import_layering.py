"""The bench_ir modules form layers: no import circle, not even through an import inside a function."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bench_ir"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "_resources" not in p.parts}


def _imported_modules(path: Path) -> set[str]:
    """bench_ir modules that ``path`` imports anywhere (module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in found if name in MODULES}


def import_graph() -> dict[str, set[str]]:
    """module -> the bench_ir modules it imports; a package's parents are not counted as imports."""
    graph = {}
    for name, path in MODULES.items():
        graph[name] = {m for m in _imported_modules(path) if m != name and not name.startswith(m + ".")}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_sees_a_circle_through_a_function_level_import():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_bench_ir_module_imports_another_that_imports_it_back():
    assert import_cycles(import_graph()) == []


@pytest.mark.parametrize(("lower", "upper"), [("bench_ir.cards", "bench_ir.checkpoints"),
                                              ("bench_ir.data.datasets", "bench_ir.data.sample")])
def test_the_layers_named_in_the_readme_point_one_way(lower, upper):
    graph = import_graph()
    assert lower in graph[upper]
    assert upper not in graph[lower]


def test_every_module_imports_first_in_a_fresh_interpreter():
    """Each module imported as the first bench_ir module (the bench_ir entries of sys.modules are dropped before
    each one, third-party modules stay loaded so that this stays fast)."""
    names = sorted(n for n in MODULES if n != "bench_ir.__main__")
    script = ("import importlib, sys, traceback\n"
              "bad = []\n"
              f"for name in {names!r}:\n"
              "    for loaded in [m for m in sys.modules if m == 'bench_ir' or m.startswith('bench_ir.')]:\n"
              "        del sys.modules[loaded]\n"
              "    try:\n"
              "        importlib.import_module(name)\n"
              "    except Exception as err:\n"
              "        bad.append(f'{name}: {type(err).__name__}: {err}')\n"
              "print(bad)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240,
                            cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def _heavy_modules_imported_by(commands: list[list[str]], expect_in_output: str = "") -> list[str]:
    """Run each `bench-ir ARGS` of ``commands`` in turn in one fresh interpreter; after each, which of torch and scipy
    were imported so far, as a printed list (one per command: the first that is not ``[]`` names the culprit)."""
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom bench_ir.cli import app\n"
            f"for args in {commands!r}:\n"
            "    result = CliRunner().invoke(app, args)\n"
            f"    assert result.exit_code == 0 and {expect_in_output!r} in result.output, result.output\n"
            "    print(sorted(m for m in ('torch', 'scipy') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


LISTINGS = ["runs", "models", "conventions", "suites", "protocols"]


def test_listing_does_not_import_torch(tmp_path):
    """`bench-ir list ...` reads manifests, cards, suites, protocols and the convention registry only: it answers in
    about a second, without the seconds torch (and scipy, through the training data code) take to import. One
    interpreter lists them all in turn (each would show what an earlier one imported)."""
    (tmp_path / "train/run").mkdir(parents=True)
    (tmp_path / "train/run/train_manifest.json").write_text('{"status": "complete", "steps_done": 3}')
    commands = [["list", what, *(["--runs-root", str(tmp_path)] if what == "runs" else [])] for what in LISTINGS]
    imported = _heavy_modules_imported_by(commands)
    assert dict(zip(LISTINGS, imported, strict=True)) == dict.fromkeys(LISTINGS, "[]")


def test_listing_the_runs_beside_a_finished_suite_does_not_import_torch(tmp_path):
    """A suite directory's cells are compared with the plan (bench_ir.execution_plan and bench_ir.run_config decide
    what a cell would record without torch)."""
    from bench_ir.suite import run_suite

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nprotocols: [derain]\noptions: {sample: true, limit: 1}\nentries: [{model: input}]\n"
                     "profile: {enabled: false}\n")
    run_suite(suite, tmp_path / "runs" / "suite-s")
    assert _heavy_modules_imported_by([["list", "runs", "--runs-root", str(tmp_path / "runs")]], "suite-s") == ["[]"]


def test_the_run_command_starts_without_importing_scipy():
    """`bench-ir run` on the benchmark data needs only the Gaussian noise of bench_ir.data.synthesis; scipy.signal and
    scipy.ndimage (over a second to import) load only when a sample degradation is synthesised."""
    code = ("import sys\nimport bench_ir.cli, bench_ir.runner, bench_ir.data.synthesis\n"
            "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
