"""
Write a backend plugin: a NumPy inference backend in one example
================================================================

Backends are pluggy plugins. A package announces one in its ``pyproject.toml``::

    [project.entry-points.featurelens]
    numpy = "featurelens_numpy.plugin"

and implements the ``featurelens_register_backends`` hook. Here the whole plugin lives in this
example and is registered in-process with ``featurelens.register_plugin``. It runs the spec's
layers in plain NumPy: enough to load the trained PyTorch model's folder, predict and look
inside, with every featurelens figure working unchanged.
"""

# %%
# The backend
# -----------
import _helpers
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import featurelens as fl
from featurelens import visualize as viz


class NumpyBackend(fl.Backend):
    name = "numpy"

    def versions(self):
        return {"numpy": np.__version__}

    def build(self, spec, seed=0):
        return {"spec": spec, "weights": {}}

    def fit(self, native, spec, train, validation, config, progress=True):
        raise NotImplementedError("the numpy backend only runs inference")

    def get_weights(self, native):
        return dict(native["weights"])

    def set_weights(self, native, weights):
        native["weights"] = {k: np.asarray(v, np.float32) for k, v in weights.items()}

    def _forward(self, native, x):
        w, out = native["weights"], {}
        for layer in native["spec"].layers():
            name, o = layer.name, layer.options
            if layer.kind == "conv2d":
                pad = o["kernel_size"] // 2
                windows = sliding_window_view(np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))),
                                              (o["kernel_size"],) * 2, axis=(1, 2))
                x = np.einsum("nhwcij,ijcf->nhwf", windows, w[f"{name}.kernel"], optimize=True) + w[f"{name}.bias"]
            elif layer.kind == "batch_norm":
                scale = w[f"{name}.gamma"] / np.sqrt(w[f"{name}.moving_variance"] + o["epsilon"])
                x = (x - w[f"{name}.moving_mean"]) * scale + w[f"{name}.beta"]
            elif layer.kind == "relu":
                x = np.maximum(x, 0)
            elif layer.kind == "max_pool":
                p = o["pool_size"]
                n, h, wd, c = x.shape
                x = x[:, :h // p * p, :wd // p * p].reshape(n, h // p, p, wd // p, p, c).max(axis=(2, 4))
            elif layer.kind == "flatten":
                x = x.reshape(len(x), -1)
            elif layer.kind == "dense":
                x = x @ w[f"{name}.kernel"] + w[f"{name}.bias"]
            elif layer.kind == "softmax":
                e = np.exp(x - x.max(axis=1, keepdims=True))
                x = e / e.sum(axis=1, keepdims=True)
            out[name] = x.astype(np.float32)  # dropout: identity at inference
        return out

    def predict(self, native, images, batch_size=256):
        return np.concatenate([self._forward(native, images[i:i + batch_size])["head_softmax"]
                               for i in range(0, len(images), batch_size)])

    def layers(self, native, input_shape):
        return [fl.LayerInfo(s.name, s.kind, s.output_shape, s.params) for s in native["spec"].layers()]

    def filters(self, native, layer):
        return native["weights"][f"{layer}.kernel"].transpose(3, 0, 1, 2).copy()

    def feature_maps(self, native, images, layers, batch_size=64):
        for i in range(0, len(images), batch_size):
            maps = self._forward(native, images[i:i + batch_size])
            yield {name: maps[name] for name in (layers or maps)}


class NumpyPlugin:
    @fl.hookimpl
    def featurelens_register_backends(self, register):
        register(fl.BackendEntry(name="numpy", load=NumpyBackend, description="NumPy inference only"))


fl.register_plugin(NumpyPlugin(), name="numpy-example")
print(fl.available_backends())

# %%
# Load a PyTorch-trained model folder with it
# -------------------------------------------
# Model folders hold backend-neutral weights, so any backend can load them.
torch_model = _helpers.seed_model("torch")
folder = _helpers.CACHE / "seed-torch"
numpy_model = fl.load_model(folder, backend="numpy")
data = _helpers.cifar10()
images = data.test_images[:500]
agreement = np.mean(numpy_model.predict(images).argmax(1) == torch_model.predict(images).argmax(1))
print(f"NumPy and PyTorch agree on {agreement:.1%} of 500 test images")
print("max probability difference:", float(np.abs(numpy_model.predict(images) - torch_model.predict(images)).max()))

# %%
# Every figure works
# ------------------
# The visualizers only ever see arrays in the canonical layouts.
maps = numpy_model.feature_maps(data.test_images[:1], ["block1_relu1", "block2_relu2", "block3_relu2"])
fig = viz.hierarchy_figure(viz.to_display(data.test_images[0]), {k: v[0] for k, v in maps.items()},
                           title="Feature maps computed by the NumPy backend")
