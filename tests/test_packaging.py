"""The package's shape: every package installed, no import cycles, small modules, and the
`socseg` command with its packaged configs."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from socseg_jax import cli
from socseg_jax.core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOTS = ("socseg_jax", "data_prep")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def source_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the installed packages."""
    modules = {}
    for root in PACKAGE_ROOTS:
        for path in sorted((ROOT / root).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    for path in sorted((ROOT / "configs").glob("*.py")):
        stem = "" if path.stem == "__init__" else f".{path.stem}"
        modules[f"socseg_jax.configs{stem}"] = path
    return modules


def test_every_package_folder_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    folders = {n for n, p in source_modules().items() if p.name == "__init__.py"}
    assert folders == listed, f"pyproject lists {sorted(listed ^ folders)} wrongly"


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports at module level (function-level imports excluded)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        targets = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{a.name}" for a in node.names]
            # `from pkg import sub` needs pkg's __init__ only when a name is not a submodule
            plain = any(m not in known for m in submodules)
            targets = submodules + ([node.module] if plain else [])
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        found |= {t for t in targets if t in known and t != name}
    return found


def test_no_import_cycles():
    modules = source_modules()
    graph = {n: imports_of(n, p, set(modules)) for n, p in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_modules_and_functions_stay_small():
    too_long = []
    for name, path in source_modules().items():
        source = path.read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert not too_long, too_long


def test_data_prep_imports_no_jax():
    code = "import sys; import data_prep.prepare.run; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_packaged_presets_resolve_and_old_keys_name_the_new_one():
    assert {"quickstart", "segment", "prepare", "default", "evaluate"} <= set(cli.presets())
    path = cli.preset_path("socseg:benchmark:quick")
    assert path.endswith("benchmark.py:quick") and Path(path.rsplit(":", 1)[0]).is_file()
    assert cli.resolve_argv(["socseg", "--config", "socseg:segment"])[2].endswith("segment.py")
    with pytest.raises(UserError, match="socseg:"):
        cli.preset_path("socseg:nosuchjob")
    with pytest.raises(UserError, match="use --config.data_bar"):
        cli.resolve_argv(["socseg", "--config.data_bar_height=12"])


def test_python_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "socseg_jax", "--config", "socseg:nosuchjob"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("error: no packaged config"), out.stderr
