"""Plugin discovery through entry points, exactly as a third-party package is installed."""

import subprocess
import sys
import textwrap

import pytest

import featurelens
from featurelens import BackendError
from featurelens.backends import BackendEntry, hookimpl, registry

FAKE_PLUGIN = '''
import numpy as np
from featurelens import ConvBlock, ModelSpec
from featurelens.backends import Backend, BackendEntry, hookimpl


class ConstantBackend(Backend):
    """Predicts the uniform distribution: enough to prove the plumbing."""
    name = "constant"

    def versions(self):
        return {"constant": "1.0"}

    def build(self, spec, seed=0):
        return {"classes": spec.num_classes}

    def predict(self, native, images, batch_size=256):
        return np.full((len(images), native["classes"]), 1 / native["classes"], np.float32)

    def get_weights(self, native):
        return {}

    def set_weights(self, native, weights):
        pass


@hookimpl
def featurelens_register_backends(register):
    register(BackendEntry(name="constant", load=ConstantBackend, description="test backend",
                          install="pip install featurelens-constant"))


@hookimpl
def featurelens_register_presets(register):
    register("one-block", lambda: ModelSpec(name="one-block", blocks=(ConvBlock(4, convs=1),)))
'''


def install_distribution(root, dist, modules, entry_points):
    """Write a minimal installed distribution (dist-info + modules) under root."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[featurelens]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def fresh_plugins():
    registry.reset()
    yield
    registry.reset()


@pytest.fixture
def installed_fake(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path, "featurelens_constant", {"featurelens_constant": FAKE_PLUGIN},
                         {"constant": "featurelens_constant"})
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtin_torch_backend_is_registered_through_its_entry_point(fresh_plugins):
    from importlib.metadata import entry_points

    assert "torch" in {ep.name for ep in entry_points(group="featurelens")}
    assert "torch" in registry.backends


def test_external_plugin_is_discovered(installed_fake):
    assert "constant" in featurelens.available_backends()
    backend = featurelens.get_backend("constant")
    assert backend.name == "constant"
    assert "one-block" in featurelens.available_presets()
    assert featurelens.get_preset("one-block").blocks[0].filters == 4


def test_external_backend_works_through_the_core(installed_fake):
    import numpy as np

    spec = featurelens.get_preset("one-block")
    norm = featurelens.Normalization((0.0,) * 3, (1.0,) * 3)
    model = featurelens.build_model(spec, norm, [str(i) for i in range(10)], backend="constant")
    result = model.evaluate(np.zeros((4, 32, 32, 3), np.uint8), np.arange(4))
    assert result.count == 4
    assert abs(result.loss - np.log(10)) < 1e-5


def test_disabled_plugins_are_skipped(installed_fake, monkeypatch):
    monkeypatch.setenv("FEATURELENS_DISABLE_PLUGINS", "constant")
    registry.reset()
    assert "constant" not in featurelens.available_backends()


def test_broken_plugin_error_names_the_real_cause(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path, "featurelens_broken",
                         {"featurelens_broken": "import not_a_real_dependency_xyz\n"},
                         {"broken": "featurelens_broken"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendError) as info:
        featurelens.get_backend("broken")
    message = str(info.value)
    assert "unknown backend 'broken'" in message
    assert "No module named 'not_a_real_dependency_xyz'" in message
    assert "featurelens_broken" in message
    if "torch" in featurelens.available_backends():
        assert "Installed backends: torch" in message


def test_backend_whose_framework_is_missing_says_how_to_install(monkeypatch, fresh_plugins):
    class Plugin:
        @hookimpl
        def featurelens_register_backends(self, register):
            register(BackendEntry(name="ghost", load=lambda: None, requires=("no_such_framework_abc",),
                                  install="pip install 'featurelens[ghost]'"))

    registry.register_plugin(Plugin(), name="ghost-plugin")
    assert "ghost" not in featurelens.available_backends()
    with pytest.raises(BackendError, match=r"pip install 'featurelens\[ghost\]'"):
        featurelens.get_backend("ghost")


def test_backend_that_fails_while_loading_keeps_the_cause(fresh_plugins):
    def explode():
        raise RuntimeError("CUDA driver too old")

    class Plugin:
        @hookimpl
        def featurelens_register_backends(self, register):
            register(BackendEntry(name="exploding", load=explode))

    registry.register_plugin(Plugin(), name="exploding-plugin")
    with pytest.raises(BackendError, match="CUDA driver too old") as info:
        featurelens.get_backend("exploding")
    assert isinstance(info.value.__cause__, RuntimeError)


def test_misspelled_hook_fails_loudly(fresh_plugins):
    class Plugin:
        @hookimpl
        def featurelens_register_backend(self, register):  # missing "s"
            pass

    with pytest.raises(Exception, match="featurelens_register_backend"):
        registry.register_plugin(Plugin(), name="typo")


def test_default_backend_follows_the_environment(installed_fake, monkeypatch):
    monkeypatch.setenv("FEATURELENS_BACKEND", "constant")
    assert featurelens.get_backend().name == "constant"
    monkeypatch.delenv("FEATURELENS_BACKEND")
    assert featurelens.get_backend().name == featurelens.available_backends()[0]


def test_cli_lists_an_installed_plugin(tmp_path):
    install_distribution(tmp_path, "featurelens_constant", {"featurelens_constant": FAKE_PLUGIN},
                         {"constant": "featurelens_constant"})
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", "featurelens", "backends"], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "constant" in out.stdout and "installed" in out.stdout


def test_reset_forgets_loaded_backends_of_a_disabled_plugin(installed_fake, monkeypatch):
    assert featurelens.get_backend("constant").name == "constant"
    monkeypatch.setenv("FEATURELENS_DISABLE_PLUGINS", "constant")
    registry.reset()
    with pytest.raises(BackendError, match="unknown backend 'constant'"):
        featurelens.get_backend("constant")


def test_a_backend_whose_name_differs_from_its_entry_is_refused(fresh_plugins):
    from featurelens.backends import Backend

    class Misnamed(Backend):
        name = "other"
        versions = build = predict = get_weights = set_weights = lambda *a, **k: None

    class Plugin:
        @hookimpl
        def featurelens_register_backends(self, register):
            register(BackendEntry(name="named", load=Misnamed))

    registry.register_plugin(Plugin(), name="misnamed-plugin")
    with pytest.raises(BackendError, match="registered as 'named' calls itself 'other'"):
        featurelens.get_backend("named")


def test_priority_orders_the_default_choice(fresh_plugins, monkeypatch):
    monkeypatch.delenv("FEATURELENS_BACKEND", raising=False)

    class Plugin:
        @hookimpl
        def featurelens_register_backends(self, register):
            register(BackendEntry(name="aaa-low", load=lambda: None, priority=-5))
            register(BackendEntry(name="zzz-high", load=lambda: None, priority=99))

    registry.register_plugin(Plugin(), name="priorities")
    names = list(registry.backends)
    assert names[0] == "zzz-high" and names[-1] == "aaa-low"
    assert registry.default_name() == "zzz-high"


FIGURE_PLUGIN = '''
from matplotlib.figure import Figure
from featurelens.backends import ReportFigure, hookimpl


def confidence(ctx):
    fig = Figure(figsize=(4, 3))
    fig.add_subplot().hist(ctx.probabilities.max(axis=1), bins=10)
    return fig


@hookimpl
def featurelens_register_figures(register):
    register(ReportFigure("confidence", "How confident", "The top probability of every test image.",
                          confidence, order=950))
'''


@pytest.mark.torch
def test_a_third_party_figure_joins_the_report(tmp_path, monkeypatch, fresh_plugins, cifar_root, isolated_env):
    from featurelens.cli import main

    install_distribution(tmp_path / "site", "featurelens_confidence", {"featurelens_confidence": FIGURE_PLUGIN},
                         {"confidence": "featurelens_confidence"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert list(registry.figures)[-1] == "confidence"
    assert list(registry.figures)[:2] == ["samples", "history"]
    model = tmp_path / "model"
    assert main(["train", "--preset", "tiny", "--data-dir", str(cifar_root), "--epochs", "1", "--device", "cpu",
                 "--out", str(model), "--no-progress"]) == 0
    assert main(["visualize", str(model), "--data-dir", str(cifar_root), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "confidence.png").is_file()
    page = (tmp_path / "fig" / "index.html").read_text()
    assert "How confident" in page and page.index("Most confident mistakes") < page.index("How confident")


def test_a_broken_figure_is_left_out_with_a_note(tmp_path, fresh_plugins, cifar_root, isolated_env):
    from types import SimpleNamespace

    from featurelens import load_cifar10
    from featurelens.backends import ReportFigure
    from featurelens.report import write_report

    def broken(ctx):
        raise ZeroDivisionError("oops")

    data = load_cifar10(cifar_root, download=False)
    with pytest.warns(RuntimeWarning, match="'broken' failed: ZeroDivisionError: oops"):
        model = SimpleNamespace(name="m", backend=SimpleNamespace(name="b"))  # the figure never reaches it
        written = write_report(model, data, tmp_path / "out", figures=[ReportFigure("broken", "B", "c", broken)])
    assert written == []
    assert "ZeroDivisionError: oops" in (tmp_path / "out" / "index.html").read_text()
