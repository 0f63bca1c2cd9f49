"""featurelens's attribution methods against the reference implementations (issue 10's "must hold").

On one PyTorch model (the ``seed`` preset on featurelens's torch backend), the same weights and the
same images, each comparison runs both sides and reports the worst per-image relative difference
``max |featurelens - peer| / max |peer|`` (tolerance 1e-4):

- Saliency vs ``captum.attr.Saliency`` (abs=True, max over channels, logit of the target);
- Integrated Gradients vs ``captum.attr.IntegratedGradients`` (same baseline, same steps, the
  midpoint rule = Captum's ``riemann_middle``; the per-channel attributions are compared), through
  Captum's public ``attribute()`` and through its integration fed featurelens's path points. The
  gated run uses 64 steps (``--steps``): for a power of two the midpoint alphas ``(k + 0.5) / n``
  are exact in float32 on both sides. At other step counts Captum's alphas come from
  ``torch.linspace``, whose float32 rounding depends on the CPU's vector width, and move by one ulp
  for some k; on a piecewise-linear net a path point on a ReLU or max-pool kink then takes the
  other side's gradient. A second, informational run (``--ulp-steps``, 50) measures that: Captum's
  public API against Captum's own integration on the unrounded points (Captum against itself).
  featurelens's default trapezoid rule is *not* compared: Captum's ``riemann_trapezoid`` with n
  points weighs them 1/n (ends halved), so its weights sum to (n-1)/n, not 1;
- Grad-CAM (and LayerCAM) vs pytorch-grad-cam's ``GradCAM`` (``LayerCAM``) on the same layer
  (featurelens's default CAM layer) and the same targets, twice: at the layer's resolution
  (featurelens's rectified ``extras["cams"]`` vs the peer's own ``get_cam_image`` on the
  activations and gradients its hooks captured, ReLU'd: no resizing, no normalisation on either
  side), and at the input's resolution (featurelens's map scaled to [0, 1] per image, as
  pytorch-grad-cam scales its output, vs the peer's output, resized by OpenCV).

Captum and pytorch-grad-cam are development tools here, never featurelens dependencies. The model
is a CNN trained briefly on CIFAR-10 when the data is found (``--train-images``), else the seeded
initial weights with batch-norm statistics randomised; images are CIFAR-10 test images, else
seeded random images. A comparison whose peer is missing is skipped with the reason; the exit
status is 1 if a comparison that ran is outside the tolerance.

pytorch-grad-cam imports torchvision, scikit-learn, ttach and cv2 at import time. On this CPU
build of torch, torchvision's wheel does not load (``operator torchvision::nms does not exist``),
so :func:`import_gradcam` puts stub modules in ``sys.modules`` for what is missing or broken;
the stubs raise if anything calls them, and the names that were looked up are reported. The
Grad-CAM path uses none of them (OpenCV's ``cv2.resize`` excepted, which is the real one when
``opencv-python-headless`` is installed; if it is not, a numpy stand-in is used and the
full-resolution comparison is reported as not independent).

    python benchmarks/check_explain_peers.py --out benchmarks/results/explain-peers-cpu.json
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from _common import machine_info, report
from torch import nn

import featurelens as fl
from featurelens.data import find_cifar10

TOLERANCE = 1e-4
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------- model and images

class Logits(nn.Module):
    """A SpecNet's logits as ``forward``, for the peers (which differentiate the module's output)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.logits(x)


def randomise_batch_norm(net: nn.Module, seed: int) -> None:
    """Non-trivial batch-norm statistics and affine parameters, seeded."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(0.5 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))


def setup(test_images: int, train_images: int, epochs: int, seed: int = 0) -> tuple[object, np.ndarray, dict]:
    """(featurelens model, uint8 test images as loaded, description of both)."""
    spec = fl.get_preset("seed")
    folder = find_cifar10(REPO / ".data") or find_cifar10()
    if folder is not None:
        data = fl.load_cifar10(folder.parent, download=False, progress=False)
        images = data.test_images[:test_images]
        about = {"images": f"CIFAR-10 test images 0-{len(images) - 1} ({folder})"}
        if train_images > 0:
            start = time.perf_counter()
            config = fl.TrainConfig(epochs=epochs, early_stopping=None, reduce_lr=None, seed=seed, device="cpu")
            model = fl.train(spec, data.train_images[:train_images], data.train_labels[:train_images], config,
                             backend="torch", class_names=data.class_names, progress=False)
            accuracy = model.evaluate(images, data.test_labels[:test_images]).accuracy
            about["model"] = (f"seed preset trained on the first {train_images} CIFAR-10 training images for "
                              f"{epochs} epoch(s) ({time.perf_counter() - start:.0f} s), accuracy "
                              f"{accuracy:.3f} on these test images")
            return model, images, about
        norm = fl.Normalization.from_images(data.train_images[:5000])
        class_names = data.class_names
    else:
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, (test_images, 32, 32, 3), dtype=np.uint8)
        norm = fl.Normalization.from_images(rng.integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8))
        class_names = [f"class{i}" for i in range(10)]
        about = {"images": "seeded random uint8 images (no CIFAR-10 copy found)"}
    model = fl.build_model(spec, norm, class_names, backend="torch", seed=seed)
    randomise_batch_norm(model.native, seed)
    about["model"] = "seed preset, seeded initial weights (seed 0), batch-norm statistics randomised"
    return model, images, about


def to_input(model, images: np.ndarray) -> torch.Tensor:
    """Images as loaded -> the normalized NCHW tensor featurelens's torch backend feeds the net."""
    return torch.from_numpy(np.ascontiguousarray(model.normalization.apply(images))).permute(0, 3, 1, 2).contiguous()


def relative(ours: np.ndarray, peer: np.ndarray) -> dict:
    """Per-image ``max |ours - peer| / max |peer|``: the worst, the median, and the largest absolute gap."""
    a = np.asarray(ours, np.float64).reshape(len(ours), -1)
    b = np.asarray(peer, np.float64).reshape(len(peer), -1)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.abs(b).max(axis=1)
    diff = np.abs(a - b).max(axis=1)
    rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff > 0, np.inf, 0.0))
    return {"max_relative": float(rel.max()), "median_relative": float(np.median(rel)),
            "max_abs": float(diff.max()), "peer_peak_median": float(np.median(scale)),
            "images_with_zero_peer_map": int((scale == 0).sum()), "images": len(a),
            "images_over_tolerance": int((rel > TOLERANCE).sum())}


# --------------------------------------------------------------------------------------- peers

class _Stub:
    """Stands for a class or function of a package that is missing or cannot load; calling it fails."""

    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError(f"{type(self).__qualname__} is an import stub of check_explain_peers.py: the real "
                           "package is not usable in this environment")


class StubModule(types.ModuleType):
    """A module whose every public attribute is a stub class; records which names were looked up."""

    looked_up: set[str] = set()

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        StubModule.looked_up.add(f"{self.__name__}.{name}")
        stub = type(name, (_Stub,), {"__qualname__": f"{self.__name__}.{name}"})
        setattr(self, name, stub)
        return stub


class _Augment:
    """ttach stand-in: GradCAM's constructor builds ``tta.Compose([HorizontalFlip(), Multiply(...)])``
    for ``aug_smooth=True``, which these comparisons never use."""

    def __init__(self, *args, **kwargs) -> None:
        pass


def _usable(name: str) -> str | None:
    """None if ``name`` imports, else why not (and nothing of it left in ``sys.modules``)."""
    if importlib.util.find_spec(name) is None:
        return "not installed"
    try:
        importlib.import_module(name)
        return None
    except Exception as exc:  # noqa: BLE001 - a broken wheel raises anything
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        return f"does not load: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def _stub(*names: str) -> None:
    for name in names:
        module = StubModule(name)
        module.__path__ = []  # a package, so submodules can be stubbed too
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)


def _numpy_resize(img: np.ndarray, dsize: tuple[int, int], *args, **kwargs) -> np.ndarray:
    from featurelens.explain import resize_bilinear
    width, height = dsize
    return resize_bilinear(np.asarray(img, np.float32)[None], (height, width))[0]


def import_gradcam() -> tuple[object | None, dict]:
    """``pytorch_grad_cam`` (or None) and a record of the shims it needed."""
    shims: dict = {}
    if importlib.util.find_spec("pytorch_grad_cam") is None:
        return None, {"skipped": "pytorch-grad-cam is not installed (pip install --no-deps grad-cam)"}
    why = _usable("torchvision")
    if why:
        _stub("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops")
        shims["torchvision"] = f"stubbed ({why})"
    why = _usable("sklearn")
    if why:
        _stub("sklearn", "sklearn.decomposition")
        shims["sklearn"] = f"stubbed ({why})"
    why = _usable("ttach")
    if why:
        tta = types.ModuleType("ttach")
        tta.Compose = tta.HorizontalFlip = tta.Multiply = _Augment
        sys.modules["ttach"] = tta
        shims["ttach"] = f"stand-in for the unused test-time augmentation ({why})"
    why = _usable("cv2")
    if why:
        cv2 = types.ModuleType("cv2")
        cv2.resize = _numpy_resize
        sys.modules["cv2"] = cv2
        shims["cv2"] = f"cv2.resize is a numpy bilinear stand-in ({why}): full-resolution comparison not independent"
    try:
        module = importlib.import_module("pytorch_grad_cam")
    except Exception as exc:  # noqa: BLE001
        return None, {"skipped": f"pytorch_grad_cam does not import: {type(exc).__name__}: {exc}", **shims}
    shims["version"] = importlib.metadata.version("grad-cam")
    if "cv2" not in shims:
        shims["cv2"] = f"real OpenCV {sys.modules['cv2'].__version__}"
    return module, shims


def import_captum() -> tuple[object | None, str]:
    try:
        import captum
        import captum.attr
    except Exception as exc:  # noqa: BLE001
        return None, f"captum is not usable: {type(exc).__name__}: {exc}"
    return captum.attr, captum.__version__


def stubbed_names_used() -> list[str]:
    return sorted(StubModule.looked_up)


# --------------------------------------------------------------------------------------- comparisons

def compare_captum(attr, model, images: np.ndarray, targets: np.ndarray, ig_images: int, steps: int,
                   ulp_steps: int) -> dict:
    from featurelens import explain
    peer = Logits(model.native).eval()
    x = to_input(model, images)
    t = torch.as_tensor(targets)
    out: dict = {}

    ours = explain.saliency(model, images, targets).maps
    theirs = attr.Saliency(peer).attribute(x.clone().requires_grad_(), target=t, abs=True).amax(dim=1)
    out["saliency"] = relative(ours, theirs.detach().numpy())
    out.update(compare_ig(attr, model, peer, images, targets, x, t, ig_images, steps, ""))
    if ulp_steps:
        out.update(compare_ig(attr, model, peer, images, targets, x, t, ig_images, ulp_steps,
                              f"_informational_{ulp_steps}_steps"))
    return out


def compare_ig(attr, model, peer, images, targets, x, t, n: int, steps: int, suffix: str) -> dict:
    """IG both ways (Captum's public API; Captum's integration on featurelens's path points), and,
    for the informational run, Captum's public API against Captum on the unrounded points."""
    from featurelens import explain
    from featurelens.explain.integrated import path
    out: dict = {}
    exact = bool(np.array_equal(torch.linspace(1 / (2 * steps), 1 - 1 / (2 * steps), steps).numpy(),
                                ((np.arange(steps) + 0.5) / steps).astype(np.float32)))
    alphas, weights = path(steps, "midpoint")
    inner = slice(1, -1)  # featurelens also evaluates the end points, with weight 0
    same_path = ([float(w) for w in weights[inner]], [float(a) for a in alphas[inner]])
    ig = attr.IntegratedGradients(peer)
    for label, baseline in (("mean colour (featurelens default: zeros, normalized)", None),
                            ("black image (pixel value 0 as loaded)", 0.0)):
        result = explain.integrated_gradients(model, images[:n], targets[:n], steps=steps, rule="midpoint",
                                              baseline=baseline)
        base = torch.zeros_like(x[:n]) if baseline is None else to_input(model, np.zeros_like(images[:n]))
        public = ig.attribute(x[:n], baselines=base, target=t[:n], n_steps=steps, method="riemann_middle",
                              internal_batch_size=64)
        # Captum's own integration, fed featurelens's float32 path points: Captum's riemann_middle alphas
        # come from torch.linspace and differ from (k + 0.5) / steps by one float32 ulp for some k
        same = torch.cat([ig._attribute((x[i:i + 4],), (base[i:i + 4],), target=t[i:i + 4], n_steps=steps,
                                        step_sizes_and_alphas=same_path)[0] for i in range(0, n, 4)])
        key = "integrated_gradients_" + ("default_baseline" if baseline is None else "black_baseline") + suffix
        entry = {"baseline": label, "steps": steps, "rule": "midpoint = captum riemann_middle",
                 "torch_linspace_alphas_exact": exact,
                 "featurelens_completeness_error_max": float(result.completeness_error.max())}
        for how, theirs in (("captum_attribute", public), ("captum_same_path_points", same)):
            theirs = theirs.permute(0, 2, 3, 1).detach().numpy()
            entry[how] = {"attributions_NHWC": relative(result.extras["attributions"], theirs),
                          "maps_sum_over_channels": relative(result.maps, theirs.sum(axis=-1))}
        if suffix:  # the peer against itself: its public API vs its integration on the unrounded points
            entry["captum_attribute_vs_captum_same_path_points"] = relative(
                public.permute(0, 2, 3, 1).detach().numpy(), same.permute(0, 2, 3, 1).detach().numpy())
        out[key] = entry
    return out


def compare_gradcam(pgc, model, images: np.ndarray, targets: np.ndarray, shims: dict) -> dict:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from featurelens import explain
    name = explain.default_cam_layer(model.layers())
    peer_model = Logits(model.native).eval()
    layer = dict(model.native.named_modules())[name]
    x = to_input(model, images)
    wanted = [ClassifierOutputTarget(int(c)) for c in targets]
    out: dict = {"layer": name}
    for method, ours_fn, peer_cls in (("gradcam", explain.gradcam, pgc.GradCAM),
                                      ("layercam", explain.layercam, pgc.LayerCAM)):
        ours = ours_fn(model, images, targets, layer=name)
        with peer_cls(model=peer_model, target_layers=[layer]) as cam:
            full = cam(input_tensor=x, targets=wanted)
            acts = cam.activations_and_grads.activations[0].numpy()
            grads = cam.activations_and_grads.gradients[0].numpy()
            raw = np.maximum(cam.get_cam_image(x, layer, wanted, acts, grads, eigen_smooth=False), 0)
        peak = ours.maps.reshape(len(ours.maps), -1)
        low, high = peak.min(axis=1), peak.max(axis=1)
        span = np.where(high > low, high - low, 1.0)  # zero maps stay zero, as the peer's do
        unit = (ours.maps - low[:, None, None]) / span[:, None, None]
        out[method] = {"layer_resolution": relative(ours.extras["cams"], raw),
                       "input_resolution_scaled_0_1": relative(unit, full),
                       "input_resolution_independent": "numpy stand-in" not in shims.get("cv2", ""),
                       "low_resolution_shape": list(raw.shape[1:])}
    model.native.zero_grad(set_to_none=True)  # the peer's backward() left .grad on the parameters
    return out


def worst(entry: dict) -> list[tuple[str, float]]:
    """(path, max_relative) of every comparison in a nested result."""
    found = []
    for key, value in entry.items():
        if isinstance(value, dict):
            if "max_relative" in value:
                found.append((key, value["max_relative"]))
            else:
                found.extend((f"{key}/{k}", v) for k, v in worst(value))
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--ig-images", type=int, default=16)
    p.add_argument("--steps", type=int, default=64,
                   help="IG steps of the gated comparison (a power of two: exact path points on both sides)")
    p.add_argument("--ulp-steps", type=int, default=50,
                   help="IG steps of the informational run, where torch.linspace rounds Captum's alphas (0: skip)")
    p.add_argument("--train-images", type=int, default=5000, help="0: seeded random weights instead")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args()

    torch.manual_seed(0)
    model, images, about = setup(args.images, args.train_images, args.epochs)
    targets = model.predict(images).argmax(axis=1).astype(np.int64)
    result: dict = {"tolerance_relative": TOLERANCE, **about, "targets": "the model's predicted classes, given "
                    "explicitly to both sides", "target_classes_histogram": np.bincount(targets, minlength=10).tolist()}

    attr, captum_version = import_captum()
    if attr is None:
        print(f"SKIP captum comparisons: {captum_version}")
        result["captum"] = {"skipped": captum_version}
    else:
        result["captum"] = {"version": captum_version,
                            **compare_captum(attr, model, images, targets, min(args.ig_images, len(images)),
                                             args.steps, args.ulp_steps)}

    pgc, shims = import_gradcam()
    if pgc is None:
        print(f"SKIP pytorch-grad-cam comparisons: {shims['skipped']}")
        result["pytorch_grad_cam"] = shims
    else:
        shims["stubbed_names_looked_up_at_import"] = stubbed_names_used()
        result["pytorch_grad_cam"] = {"imports": shims, **compare_gradcam(pgc, model, images, targets, shims)}
        shims["stubbed_names_looked_up_in_total"] = stubbed_names_used()

    result["machine"] = machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads())
    checks = worst({k: v for k, v in result.items() if k in ("captum", "pytorch_grad_cam")})
    # At --ulp-steps Captum's public attribute() integrates on torch.linspace alphas, one float32 ulp away from
    # (k + 0.5) / steps for some k: on a piecewise-linear net a path point that sits on a ReLU or max-pool kink
    # can then take the other side's gradient. Recorded, not gated; the gated run (--steps, a power of two) has
    # exact path points on both sides and gates Captum's public API too.
    informational = [(k, v) for k, v in checks if "_informational_" in k]
    gated = [(k, v) for k, v in checks if "_informational_" not in k]
    failed = [(k, v) for k, v in gated if not v <= TOLERANCE]
    result["verdict"] = {"gated_comparisons": len(gated), "outside_tolerance": [k for k, _ in failed],
                         "worst_gated": max((v for _, v in gated), default=None),
                         "informational_not_gated": dict(informational)}
    report(result, args.out)
    for key, value in checks:
        tag = "info" if (key, value) in informational else "FAIL" if (key, value) in failed else "ok  "
        print(f"{tag} {key}: max relative difference {value:.2e}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
