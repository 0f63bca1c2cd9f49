import ast
import subprocess
import sys
from pathlib import Path

import pytest


def test_import_featurelens_imports_no_framework():
    code = ("import sys, featurelens, featurelens.cli, featurelens.backends, featurelens.testing, featurelens.report;"
            "featurelens.available_backends();"
            "print(','.join(m for m in ('torch', 'keras', 'tensorflow', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "featurelens", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("backends", "train", "evaluate", "demo"):
        assert command in out.stdout


ROOT = Path(__file__).resolve().parent.parent
SURFACE = {"featurelens", "featurelens.backends"}


def _featurelens_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return {m for m in found if m == "featurelens" or m.startswith("featurelens.")}


@pytest.mark.parametrize("plugin", ["featurelens_torch", "featurelens_keras"])
def test_builtin_plugins_import_only_the_public_surface(plugin):
    files = sorted((ROOT / "plugins" / plugin).glob("*.py"))
    assert files
    used = {f"{path.name}: {module}" for path in files for module in _featurelens_imports(path) - SURFACE}
    assert not used, f"{plugin} imports featurelens internals: {sorted(used)}"


def test_the_surface_exports_exactly_its_all():
    import featurelens.backends as surface

    assert sorted(surface.__all__) == sorted(set(surface.__all__))
    for name in surface.__all__:
        assert getattr(surface, name, None) is not None, name
    public = {n for n in vars(surface) if not n.startswith("_") and not isinstance(getattr(surface, n), type(ast))}
    assert public <= set(surface.__all__), f"public but not in __all__: {sorted(public - set(surface.__all__))}"
