"""The example third-party plugin, examples/featurelens-numpy: it passes the conformance kit, and its
wheel installs next to featurelens's into a fresh virtual environment, where featurelens finds it."""

from __future__ import annotations

import ast
import importlib
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from featurelens import testing
from featurelens.backends import Capability, registry
from featurelens.testing import CHECKS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "featurelens-numpy"
PACKAGE = "featurelens_numpy"
UNDECLARED = {c.name for c in CHECKS
              if c.capability in (Capability.TRAIN, Capability.WRAP, Capability.GRADIENTS, Capability.RESUME)}


def _example_modules() -> list[str]:
    return [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]


@pytest.fixture
def example_plugin(monkeypatch):
    """The plugin's source in examples/, registered in-process; an installed copy, if any, is disabled."""
    for name in _example_modules():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    disabled = os.environ.get("FEATURELENS_DISABLE_PLUGINS", "")
    monkeypatch.setenv("FEATURELENS_DISABLE_PLUGINS", f"{disabled},numpy" if disabled else "numpy")
    registry.reset()
    plugin = importlib.import_module(f"{PACKAGE}.plugin")
    assert Path(plugin.__file__).resolve().is_relative_to(EXAMPLE)
    registry.register_plugin(plugin, name="numpy-example")
    yield plugin
    registry.unregister_plugin("numpy-example")
    registry.reset()
    for name in _example_modules():  # monkeypatch then restores an installed copy's modules, if any
        del sys.modules[name]


def test_example_plugin_passes_the_conformance_kit(example_plugin):
    results = testing.check_backend("numpy")
    status = {r.check: r.status for r in results}
    failed = [f"{r.check}: {r.message}" for r in results if r.failed]
    assert not failed, "\n".join(failed)
    assert {name for name, s in status.items() if s == "skipped"} - {"cross_backend"} == UNDECLARED
    others = [name for name in registry.available() if name != "numpy"]
    assert status["cross_backend"] == ("passed" if others else "skipped")


def test_example_plugin_registers_without_importing_its_backend():
    code = (f"import sys; sys.path.insert(0, {str(EXAMPLE)!r}); import {PACKAGE}.plugin; "
            "print(sorted(m for m in ('featurelens_numpy.backend', 'torch', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_example_plugin_imports_only_the_public_surface():
    files = sorted((EXAMPLE / PACKAGE).glob("*.py"))
    assert {path.name for path in files} >= {"__init__.py", "plugin.py", "backend.py"}
    used = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                       [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            used |= {f"{path.name}: {m}" for m in modules
                     if m.startswith("featurelens.") and m != "featurelens.backends"}
    assert not used, f"the example plugin imports featurelens internals: {sorted(used)}"


# -- the wheels, installed into a fresh virtual environment ----------------------------------------

#: What pip prints when it cannot reach the package registry (to fetch the build backend).
UNREACHABLE = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                         r"resolution|Name or service not known|Network is unreachable|ConnectTimeoutError|"
                         r"ReadTimeoutError|ProxyError|Max retries exceeded")
CORE_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src", "plugins")
NOT_SOURCES = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", "tests")


def _run(args: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(map(str, args))} ran for more than {timeout:.0f} s; its output: {exc.output!r}")


def _tail(proc: subprocess.CompletedProcess, lines: int = 40) -> str:
    return "\n".join((proc.stdout + proc.stderr).splitlines()[-lines:])


def _sources(tmp_path: Path) -> list[Path]:
    """Copies of the two projects' sources: building in a copy never writes build/ into the checkout."""
    featurelens = tmp_path / "featurelens-src"
    featurelens.mkdir()
    for name in CORE_SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, featurelens / name, ignore=NOT_SOURCES)
        else:
            shutil.copy2(source, featurelens / name)
    plugin = tmp_path / "featurelens-numpy-src"
    shutil.copytree(EXAMPLE, plugin, ignore=NOT_SOURCES)
    return [featurelens, plugin]


@pytest.mark.wheel
def test_wheels_install_into_a_fresh_environment(tmp_path):
    started = time.perf_counter()
    wheels = tmp_path / "wheels"
    # pip fetches the build backend (setuptools) from the registry; fail fast when it is unreachable
    quick = {**os.environ, "PIP_DEFAULT_TIMEOUT": "30", "PIP_RETRIES": "2"}
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, *_sources(tmp_path)],
                 timeout=600, env=quick)
    unreachable = UNREACHABLE.search(built.stdout + built.stderr) if built.returncode != 0 else None
    if unreachable:
        pytest.skip(f"pip wheel could not reach the package registry for the build backend ({unreachable[0]})")
    assert built.returncode == 0, f"pip wheel failed:\n{_tail(built)}"
    names = sorted(p.name for p in wheels.glob("*.whl"))
    assert len(names) == 2 and names[0].startswith("featurelens-") and names[1].startswith("featurelens_numpy-"), names
    with zipfile.ZipFile(wheels / names[0]) as wheel:  # the explorer's page is package data
        shipped = set(wheel.namelist())
    assert {f"featurelens/explore/site/{name}" for name in ("index.html", "explorer.css", "explorer.js")} <= shipped

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", venv], timeout=300)
    assert made.returncode == 0, f"python -m venv failed:\n{_tail(made)}"
    python, bindir = venv / "bin" / "python", venv / "bin"
    # the fresh environment sees nothing of the checkout or of this test run's settings
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FEATURELENS_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "KERAS_BACKEND")}
    env.update(MPLBACKEND="Agg", PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}")
    installed = _run([python, "-m", "pip", "install", "-c", ROOT / "constraints" / "cpu.txt", "--find-links", wheels,
                      "featurelens[torch]", "featurelens-numpy"], timeout=900, env=env, cwd=tmp_path)
    assert installed.returncode == 0, f"pip install failed:\n{_tail(installed)}"

    where = _run([python, "-c", "import featurelens, featurelens_numpy, importlib.metadata as m; "
                  "print(featurelens.__file__); print(featurelens_numpy.__file__); print(m.version('featurelens'))"],
                 timeout=120, env=env, cwd=tmp_path)
    assert where.returncode == 0, _tail(where)
    core_file, plugin_file, version = where.stdout.split()
    assert Path(core_file).is_relative_to(venv) and Path(plugin_file).is_relative_to(venv), where.stdout
    assert names[0].startswith(f"featurelens-{version}-"), f"pip installed featurelens {version}, not {names[0]}"

    backends = _run([bindir / "featurelens", "backends"], timeout=120, env=env, cwd=tmp_path)
    assert backends.returncode == 0, _tail(backends)
    for name in ("torch", "numpy"):
        assert re.search(rf"^{name}\s+installed\b", backends.stdout, re.M), backends.stdout

    kit = _run([bindir / "featurelens", "check-backend", "numpy"], timeout=600, env=env, cwd=tmp_path)
    assert kit.returncode == 0, f"featurelens check-backend numpy failed:\n{kit.stdout}{kit.stderr}"
    assert re.search(r"^PASSED\s+cross_backend\s.*\btorch\b", kit.stdout, re.M), kit.stdout
    expected = f"^{len(CHECKS) - len(UNDECLARED)} checks passed, 0 failed, {len(UNDECLARED)} skipped$"
    assert re.search(expected, kit.stdout, re.M), kit.stdout
    print(f"wheels built, installed and checked in {time.perf_counter() - started:.0f} s")
