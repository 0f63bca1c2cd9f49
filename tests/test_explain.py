"""Attribution methods (featurelens.explain) on a pure-numpy fake backend, and on PyTorch.

The fake model is linear: 16x16x3 images, a 2x2 average pool, a 1x1 "conv" to 4 channels and a
dense head, so every gradient is known in closed form (IG is exact, SmoothGrad equals saliency).
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

import featurelens as fl
from featurelens import explain as ex
from featurelens.backends import Backend, Capability, ClassScore, Gradients, LayerInfo, unknown_layer

SHAPE = (16, 16, 3)
CLASSES = 5
NAMES = [f"c{i}" for i in range(CLASSES)]


class LinearNet:
    """pool (8x8x3) -> conv 1x1 (8x8x4) -> flatten -> dense (5 logits)."""

    def __init__(self, seed: int = 0, silent: tuple[int, ...] = (), only: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.p = rng.normal(size=(3, 4))
        self.v = rng.normal(size=(8, 8, 4, CLASSES))
        self.b = rng.normal(size=CLASSES)
        for c in silent:  # a class the conv layer says nothing about: zero CAMs
            self.v[..., c] = 0.0
        if only is not None:  # only class `only` depends on the input
            keep = self.v[..., only].copy()
            self.v[:] = 0.0
            self.v[..., only] = keep

    def pool(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), 8, 2, 8, 2, 3).mean(axis=(2, 4))

    def conv(self, x: np.ndarray) -> np.ndarray:
        return self.pool(x) @ self.p

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.einsum("nyxk,yxkc->nc", self.conv(x), self.v) + self.b


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class FakeBackend(Backend):
    name = "fake"
    capabilities = frozenset({Capability.INTROSPECT, Capability.GRADIENTS})

    def __init__(self) -> None:
        self.batches: list[int] = []

    def versions(self):
        return {}

    def build(self, spec, seed=0):
        return LinearNet(seed)

    def predict(self, native, images, batch_size=256):
        assert images.dtype == np.float32 and len(images) <= max(batch_size, 1)
        self.batches.append(len(images))
        return softmax(native.logits(images.astype(np.float64))).astype(np.float32)

    def get_weights(self, native):
        return {}

    def set_weights(self, native, weights):
        pass

    def layers(self, native, input_shape):
        return [LayerInfo("pool", "avg_pool", (8, 8, 3), 0), LayerInfo("conv", "conv2d", (8, 8, 4), 16),
                LayerInfo("flatten", "flatten", (256,), 0), LayerInfo("dense", "dense", (CLASSES,), 1285)]

    def feature_maps(self, native, images, layers, batch_size=64):
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].astype(np.float64)
            out = {"pool": native.pool(x), "conv": native.conv(x)}
            yield {name: out[name].astype(np.float32) for name in (layers or out)}

    def value_and_grad(self, native, images, objective, *, layer=None, wrt_input=True, batch_size=64):
        assert isinstance(objective, ClassScore) and len(images) <= batch_size
        if layer not in (None, "conv"):
            raise unknown_layer(layer, ["conv"])
        self.batches.append(len(images))
        x = images.astype(np.float64)
        t = np.asarray(objective.targets, np.int64)
        n = len(x)
        z = native.logits(x)
        p = softmax(z)
        weight = np.eye(CLASSES)[t]
        if objective.kind == "log_probability":
            weight = weight - p
            values = np.log(p[np.arange(n), t])
        else:
            values = z[np.arange(n), t]
        dconv = np.einsum("yxkc,nc->nyxk", native.v, weight)
        dpool = dconv @ native.p.T
        dx = np.repeat(np.repeat(dpool, 2, axis=1), 2, axis=2) / 4
        return Gradients(values.astype(np.float32), dx.astype(np.float32) if wrt_input else None, layer,
                         native.conv(x).astype(np.float32) if layer else None,
                         dconv.astype(np.float32) if layer else None)


class ForwardOnly(FakeBackend):
    name = "forward"
    capabilities = frozenset({Capability.INTROSPECT})


NORM = fl.Normalization((120.0, 110.0, 100.0), (60.0, 50.0, 70.0))


def make_model(backend: Backend | None = None, **net) -> fl.Model:
    return fl.Model(backend or FakeBackend(), LinearNet(**net), NORM, NAMES, SHAPE)


@pytest.fixture
def images():
    return np.random.default_rng(1).integers(0, 256, (5, *SHAPE)).astype(np.uint8)


ALL = list(ex.METHODS)


@pytest.mark.parametrize("method", ALL)
def test_every_method_gives_finite_maps_at_input_resolution(method, images):
    model = make_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = ex.explain(model, images, method=method, batch_size=3)
    assert result.maps.shape == (5, 16, 16) and result.maps.dtype == np.float32
    assert np.isfinite(result.maps).all()
    assert result.method == method
    probs = model.predict(images)
    np.testing.assert_array_equal(result.targets, probs.argmax(axis=1))
    np.testing.assert_allclose(result.probabilities, probs.max(axis=1), rtol=1e-6)
    if method in ("gradcam", "gradcam++", "layercam", "scorecam"):
        assert result.layer == "conv" and (result.maps >= 0).all()
    else:
        assert result.layer is None


@pytest.mark.parametrize("method", ALL)
def test_batches_never_exceed_batch_size_and_do_not_change_the_result(method, images):
    options = {"samples": 7} if method == "smoothgrad" else {"steps": 9} if method == "integrated_gradients" else {}
    small, large = FakeBackend(), FakeBackend()
    a = ex.explain(make_model(small), images, [0, 1, 2, 3, 4], method=method, batch_size=2, **options)
    b = ex.explain(make_model(large), images, [0, 1, 2, 3, 4], method=method, batch_size=500, **options)
    assert max(small.batches) <= 2
    np.testing.assert_allclose(a.maps, b.maps, rtol=1e-5, atol=1e-6)


def test_saliency_is_the_largest_absolute_input_gradient(images):
    model = make_model()
    result = ex.saliency(model, images, 2)
    grads = model.backend.value_and_grad(model.native, model.normalize(images), ClassScore(np.full(5, 2)))
    np.testing.assert_allclose(result.maps, np.abs(grads.input_grad).max(axis=-1), rtol=1e-6)
    assert (result.targets == 2).all()


def test_smoothgrad_of_a_linear_model_is_its_saliency(images):
    model = make_model()
    smooth = ex.smoothgrad(model, images, samples=10, noise=0.2)
    np.testing.assert_allclose(smooth.maps, ex.saliency(model, images).maps, rtol=1e-5)


@pytest.mark.parametrize("rule", ["trapezoid", "midpoint"])
@pytest.mark.parametrize("score", ["logit", "log_probability"])
def test_integrated_gradients_completeness(rule, score, images):
    model = make_model()
    result = ex.integrated_gradients(model, images, steps=40, rule=rule, score=score, tolerance=1.0)
    assert result.completeness_error is not None and result.completeness_error.shape == (5,)
    attributions = result.extras["attributions"]
    np.testing.assert_allclose(result.maps, attributions.sum(axis=-1), rtol=1e-5, atol=1e-6)
    x = model.normalize(images).astype(np.float64)
    logits = model.native.logits(x)
    base = model.native.logits(np.zeros_like(x))
    rows = np.arange(5), result.targets
    if score == "logit":  # linear: exact, whatever the rule and the number of steps
        assert result.completeness_error.max() < 1e-4
        grads = model.backend.value_and_grad(model.native, x.astype(np.float32), ClassScore(result.targets))
        np.testing.assert_allclose(attributions, (x * grads.input_grad).astype(np.float32), atol=1e-4)
        np.testing.assert_allclose(result.extras["values"] - result.extras["baseline_values"],
                                   logits[rows] - base[rows], rtol=1e-4)
    else:  # a smooth non-linear score: small error with 40 steps
        assert result.completeness_error.max() < 0.02


def test_integrated_gradients_warns_when_incomplete(images):
    model = make_model()
    with pytest.warns(ex.ExplanationWarning, match="completeness error above 1e-09"):
        result = ex.integrated_gradients(model, images, steps=2, score="log_probability", tolerance=1e-9)
    assert np.isfinite(result.completeness_error).all()


def test_integrated_gradients_baseline_as_loaded(images):
    model = make_model()
    mean_image = np.broadcast_to(np.asarray(NORM.mean, np.float32), SHAPE)
    a = ex.integrated_gradients(model, images, steps=4)
    b = ex.integrated_gradients(model, images, steps=4, baseline=mean_image)
    np.testing.assert_allclose(a.maps, b.maps, rtol=1e-4, atol=1e-5)
    black = ex.integrated_gradients(model, images, steps=4, baseline=0.0)
    assert black.completeness_error.max() < 1e-4
    with pytest.raises(fl.InputError, match="baseline must be"):
        ex.integrated_gradients(model, images, baseline=np.zeros((2, 2)))


def test_gradcam_matches_its_definition_and_upsamples_bilinearly(images):
    model = make_model()
    result = ex.gradcam(model, images, 1)
    acts = model.native.conv(model.normalize(images).astype(np.float64))
    weights = model.native.v[..., 1].mean(axis=(0, 1))
    cams = np.maximum((acts * weights).sum(axis=-1), 0)
    np.testing.assert_allclose(result.extras["cams"], cams, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.maps, ex.resize_bilinear(cams.astype(np.float32), (16, 16)), rtol=1e-4,
                               atol=1e-5)


def test_zero_cam_warns_and_is_zero_not_nan(images):
    model = make_model(silent=(3,))
    for method in ("gradcam", "gradcam++", "layercam"):
        with pytest.warns(ex.ExplanationWarning, match="all negative or constant"):
            result = ex.explain(model, images, 3, method=method)
        assert not np.isnan(result.maps).any() and (result.maps == 0).all()


def test_resize_bilinear_agrees_with_the_half_pixel_convention():
    small = np.array([[[0.0, 1.0], [2.0, 3.0]]], np.float32)
    big = ex.resize_bilinear(small, (4, 4))[0]
    np.testing.assert_allclose(big[0], [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(big[:, 0], [0, 0.5, 1.5, 2])
    assert ex.resize_bilinear(np.ones((2, 3, 3, 5), np.float32), (7, 9)).shape == (2, 7, 9, 5)


def test_occlusion_of_a_silent_class_is_almost_zero_and_patches_cover_every_pixel(images):
    model = make_model(only=0)
    result = ex.occlusion(model, images, 0, patch=5, stride=4)
    assert result.maps.shape == (5, 16, 16) and np.isfinite(result.maps).all()
    with pytest.raises(fl.InputError, match="larger than"):
        ex.occlusion(model, images, patch=17)


def test_default_cam_layer_rule():
    def info(name, kind, size, channels=8):
        return LayerInfo(name, kind, (size, size, channels), 0)
    seed_like = [info("c1", "conv2d", 32), info("bn1", "batch_norm", 32), info("r1", "relu", 32),
                 info("c2", "conv2d", 16), info("bn2", "batch_norm", 16), info("r2", "relu", 16),
                 info("c3", "conv2d", 8), info("bn3", "batch_norm", 8), info("r3", "relu", 8),
                 info("pool", "max_pool", 4), info("c4", "conv2d", 4), info("r4", "relu", 4),
                 LayerInfo("flat", "flatten", (128,), 0)]
    assert ex.default_cam_layer(seed_like) == "r3"
    assert ex.default_cam_layer([info("c", "conv2d", 8), info("p", "max_pool", 4)]) == "c"
    assert ex.default_cam_layer([info("c", "conv2d", 4), info("r", "relu", 4)]) == "r"  # none 8x8: last conv
    with pytest.raises(fl.InputError, match="no conv layer"):
        ex.default_cam_layer([LayerInfo("d", "dense", (3,), 0)])


def test_errors(images):
    model = make_model()
    with pytest.raises(fl.InputError, match="unknown attribution method 'gradcam3'.*saliency.*occlusion"):
        ex.explain(model, images, method="gradcam3")
    with pytest.raises(fl.InputError, match="not spatial"):
        ex.gradcam(model, images, layer="flatten")
    with pytest.raises(fl.LayerNotFoundError, match="nope"):
        ex.layercam(model, images, layer="nope")
    with pytest.raises(fl.InputError, match="target 5 is not a class.*0 to 4"):
        ex.saliency(model, images, [0, 1, 2, 3, 5])
    with pytest.raises(fl.InputError, match="one class per image"):
        ex.saliency(model, images, [0, 1])
    with pytest.raises(fl.InputError, match="integer"):
        ex.saliency(model, images, np.zeros(5))
    with pytest.raises(fl.InputError, match="expected images of shape"):
        ex.smoothgrad(model, images[:, :8])
    with pytest.raises(fl.InputError, match="takes no layer"):
        ex.integrated_gradients(model, images, layer="conv")
    with pytest.raises(fl.InputError, match="score must be"):
        ex.saliency(model, images, score="probability")
    with pytest.raises(fl.InputError, match="rule must be"):
        ex.integrated_gradients(model, images, rule="simpson")
    forward = make_model(ForwardOnly())
    for method in ("saliency", "smoothgrad", "integrated_gradients", "gradcam", "gradcam++", "layercam"):
        with pytest.raises(fl.BackendError, match="'gradients' capability"):
            ex.explain(forward, images, method=method)
    assert ex.scorecam(forward, images).maps.shape == (5, 16, 16)
    assert ex.occlusion(forward, images).maps.shape == (5, 16, 16)


def test_rank_correlation_against_hand_computed_values():
    # ties share their average rank: b ranks (1, 2, 3.5, 5, 3.5); rho = 8 / sqrt(10 * 9.5)
    a = np.array([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [3, 1, 2, 5, 4], [1, 1, 1, 1, 1]], float)
    b = np.array([[5, 6, 7, 8, 7], [5, 4, 3, 2, 1], [30, 10, 20, 40, 50], [1, 2, 3, 4, 5]], float)
    rho = ex.rank_correlation(a, b)
    np.testing.assert_allclose(rho[:3], [8 / np.sqrt(95), -1.0, 0.9])  # 1 - 6 * 2 / (5 * 24) = 0.9
    assert np.isnan(rho[3])
    np.testing.assert_array_equal(ex.rankdata(np.array([10, 20, 10, 30])), [1.5, 3, 1.5, 4])


def test_randomization_check(images):
    model = make_model()
    same = ex.randomization_check(model, images, method="saliency", randomized=make_model())
    np.testing.assert_allclose(same.spearman, 1.0)
    other = ex.randomization_check(model, images, method="gradcam", randomized=fl.Model(
        FakeBackend(), LinearNet(seed=7), NORM, NAMES, SHAPE))
    assert other.spearman.shape == (5,) and (other.spearman < 0.99).all()
    np.testing.assert_array_equal(other.randomized.targets, other.trained.targets)
    assert "Spearman" in other.describe()
    with pytest.raises(fl.InputError, match="randomized="):
        ex.randomization_check(model, images)


def test_deletion_and_insertion_curves(images):
    model = make_model(only=0)  # the target's probability follows its logit alone
    ig = ex.integrated_gradients(model, images, 0, steps=4)
    good_del = ex.deletion_curve(model, images, ig, steps=8, batch_size=3)
    bad_del = ex.deletion_curve(model, images, -ig.maps, 0, steps=8)
    good_ins = ex.insertion_curve(model, images, ig, steps=8)
    bad_ins = ex.insertion_curve(model, images, -ig.maps, 0, steps=8)
    assert good_del.probabilities.shape == (5, 9) and good_del.fractions[0] == 0 and good_del.fractions[-1] == 1
    assert (good_del.auc < bad_del.auc).all() and (good_ins.auc > bad_ins.auc).all()
    np.testing.assert_allclose(good_del.probabilities[:, 0], ig.probabilities, rtol=1e-5)
    np.testing.assert_allclose(good_ins.probabilities[:, -1], ig.probabilities, rtol=1e-5)
    np.testing.assert_allclose(good_del.probabilities[:, -1], good_ins.probabilities[:, 0], rtol=1e-5)
    chunked = ex.deletion_curve(model, images, ig, steps=8, batch_size=500)
    np.testing.assert_allclose(chunked.probabilities, good_del.probabilities, rtol=1e-6)
    flat = ex.Curve("x", np.linspace(0, 1, 5), np.full((1, 5), 0.3), np.zeros(1), np.zeros(1))
    np.testing.assert_allclose(ex.trust._area(flat.fractions, flat.probabilities), [0.3])
    with pytest.raises(fl.InputError, match="maps must be"):
        ex.deletion_curve(model, images, ig.maps[:, :8])


# -- PyTorch: the real primitive -------------------------------------------------------------------

HAS_CAPTUM = importlib.util.find_spec("captum") is not None


def _torch_models():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from conftest import synthetic_images

    labels = np.arange(10)
    images = synthetic_images(labels)[:4]
    norm = fl.Normalization.from_images(synthetic_images(np.tile(np.arange(10), 3)))
    spec_model = fl.build_model(fl.get_preset("tiny"), norm, [f"c{i}" for i in range(10)], backend="torch", seed=3)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.act = nn.ReLU()
            self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
            self.pool = nn.AvgPool2d(4)
            self.head = nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            h = self.act(self.stem(x))
            h = torch.relu(h + self.branch(h))
            return self.head(torch.flatten(self.pool(h), 1))

    module = Residual().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = fl.wrap(module, "torch", normalization=norm, class_names=[f"c{i}" for i in range(10)])
    return spec_model, wrapped, images


@pytest.fixture(scope="module")
def torch_models():
    return _torch_models()


@pytest.mark.torch
@pytest.mark.parametrize("which", ["spec", "wrapped"])
def test_torch_every_method_runs(torch_models, which):
    spec_model, wrapped, images = torch_models
    model = spec_model if which == "spec" else wrapped
    for method in ex.METHODS:
        options = {"samples": 4} if method == "smoothgrad" else {"steps": 8} if method == "integrated_gradients" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = ex.explain(model, images, method=method, batch_size=3, **options)
        assert result.maps.shape == (4, 32, 32) and np.isfinite(result.maps).all(), method
    if which == "spec":
        assert ex.gradcam(model, images).layer == "block2_relu1"


@pytest.mark.torch
@pytest.mark.parametrize("which", ["spec", "wrapped"])
def test_torch_integrated_gradients_completeness(torch_models, which):
    spec_model, wrapped, images = torch_models
    model = spec_model if which == "spec" else wrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = ex.integrated_gradients(model, images, steps=128, rule="midpoint", batch_size=64, tolerance=0.05)
    assert result.completeness_error.max() < 0.05


@pytest.mark.torch
def test_torch_randomization_check_and_curves(torch_models):
    spec_model, _, images = torch_models
    check = ex.randomization_check(spec_model, images, method="saliency", seed=99)
    assert check.spearman.shape == (4,) and np.isfinite(check.spearman).all()
    assert (check.spearman < 0.999).all()
    curve = ex.deletion_curve(spec_model, images, check.trained, steps=4, batch_size=5)
    assert curve.probabilities.shape == (4, 5) and np.isfinite(curve.auc).all()


@pytest.mark.torch
@pytest.mark.skipif(not HAS_CAPTUM, reason="Captum is unavailable in this environment (an optional cross-check)")
def test_torch_matches_captum(torch_models):
    import torch
    from captum.attr import IntegratedGradients, Saliency

    _, wrapped, images = torch_models
    net = wrapped.native
    x = torch.from_numpy(wrapped.normalize(images)).permute(0, 3, 1, 2).contiguous()
    targets = ex.saliency(wrapped, images).targets
    target = torch.from_numpy(targets)
    theirs = Saliency(net).attribute(x, target=target, abs=True).amax(dim=1).numpy()
    ours = ex.saliency(wrapped, images, targets).maps
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())
    theirs_ig = IntegratedGradients(net).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=32,
                                                   method="riemann_middle").permute(0, 2, 3, 1).detach().numpy()
    ig = ex.integrated_gradients(wrapped, images, targets, steps=32, rule="midpoint", tolerance=1.0)
    np.testing.assert_allclose(ig.extras["attributions"], theirs_ig, rtol=1e-4, atol=1e-4 * np.abs(theirs_ig).max())


def test_smoothgrad_checks_its_options(images):
    model = make_model()
    with pytest.raises(fl.InputError, match="noise must be"):
        ex.smoothgrad(model, images, noise=-0.1)
    with pytest.raises(fl.InputError, match="samples must be"):
        ex.smoothgrad(model, images, samples=0)
    assert ex.smoothgrad(model, images, noise=np.float32(0.1), samples=2).maps.shape == (5, 16, 16)
