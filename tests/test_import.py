import subprocess
import sys


def test_import_featurelens_imports_no_framework():
    code = ("import sys, featurelens, featurelens.cli, featurelens.plugins;"
            "featurelens.available_backends();"
            "print(','.join(m for m in ('torch', 'keras', 'tensorflow', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "featurelens", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("backends", "train", "evaluate", "demo"):
        assert command in out.stdout
