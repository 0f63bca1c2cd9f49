"""
Write a backend plugin: a NumPy backend as its own distribution
===============================================================

Backends are pluggy plugins, and the built-in PyTorch and Keras backends register exactly as a
third party's would. The repository ships a complete third-party backend as a distribution of
its own, ``examples/featurelens-numpy``: NumPy inference and introspection, no training. Its
``pyproject.toml`` announces it to featurelens::

    [project.entry-points.featurelens]
    numpy = "featurelens_numpy.plugin"

and it imports nothing of featurelens but ``featurelens`` and ``featurelens.backends``. This
example reads its code, loads the model folder the PyTorch backend trained with it, looks inside,
and ends by running the conformance kit that every backend must pass. (The documentation build
installs the plugin with ``pip install -e examples/featurelens-numpy``; see
:doc:`/plugin_tutorial` for the checklist.)
"""

# %%
# The entry point
# ---------------
# featurelens imports ``featurelens_numpy.plugin`` when it first needs its backends. The hook
# registers a cheap :class:`~featurelens.backends.BackendEntry`: its ``load`` imports the backend
# module only when the backend is used, so ``featurelens backends`` stays fast. The entry's name
# is the backend's name, and ``priority`` 0 keeps PyTorch (20) and Keras (10) the default.
import inspect
import time

import _helpers
import featurelens_numpy.plugin
import numpy as np
from featurelens_numpy import backend as numpy_backend

import featurelens as fl
from featurelens import testing
from featurelens import visualize as viz

print(inspect.getsource(featurelens_numpy.plugin))

# %%
# Installed next to featurelens, the plugin is found through its entry point: ``featurelens
# backends`` lists it with the built-in backends.
for status in fl.backend_status():
    print(f"{status.name:<6} {'installed' if status.installed else 'not installed':<14} {status.description}")

# %%
# The backend class
# -----------------
# :class:`~featurelens.backends.Backend` asks every backend for ``versions``, ``build``,
# ``predict``, ``get_weights`` and ``set_weights``; the rest it declares in ``capabilities``.
# This one declares only ``INTROSPECT`` (``layers``, ``filters``, ``feature_maps``): featurelens
# refuses to train with it, with a message saying why, and the conformance kit skips its training
# checks. Its native model is just the spec and the weights in featurelens's canonical layouts,
# so weights move in and out as copies. NumPy cannot attach hooks to a model, so the backend keeps
# the base class's ``attachments`` (nothing is ever attached).
print(inspect.getsource(numpy_backend.NumpyBackend))

# %%
# The forward pass
# ----------------
# The layers of ``spec.layers()``, in float32 and channels last from start to end. A convolution
# is *im2col*: a strided view of every kh x kw window of the padded input, copied once into a
# matrix and multiplied with the kernel, one BLAS call per layer. ``flatten`` reshapes
# (N, H, W, C), which is exactly the canonical (H, W, C) order the dense weights expect.
print(inspect.getsource(numpy_backend.conv2d))
print(inspect.getsource(numpy_backend.forward))

# %%
# Load a PyTorch-trained model folder with it
# -------------------------------------------
# Model folders hold backend-neutral weights, so any backend can load them.
torch_model = _helpers.seed_model("torch")
folder = _helpers.CACHE / "seed-torch"
numpy_model = fl.load_model(folder, backend="numpy")
data = _helpers.cifar10()
images = data.test_images[:500]
started = time.perf_counter()
numpy_probabilities = numpy_model.predict(images)
seconds = time.perf_counter() - started
torch_probabilities = torch_model.predict(images)
agreement = np.mean(numpy_probabilities.argmax(1) == torch_probabilities.argmax(1))
print(f"the NumPy backend predicted 500 test images in {seconds:.1f} s")
print(f"NumPy and PyTorch agree on {agreement:.1%} of them")
print("max probability difference:", float(np.abs(numpy_probabilities - torch_probabilities).max()))

# %%
# Every figure works
# ------------------
# The visualizers only ever see arrays in the canonical layouts.
maps = numpy_model.feature_maps(data.test_images[:1], ["block1_relu1", "block2_relu2", "block3_relu2"])
fig = viz.hierarchy_figure(viz.to_display(data.test_images[0]), {k: v[0] for k, v in maps.items()},
                           title="Feature maps computed by the NumPy backend")

# %%
# Run the conformance kit
# -----------------------
# ``featurelens check-backend numpy`` runs the same checks from the command line: weights in the
# canonical names and layouts, probabilities and every feature map equal to a float64 reference
# forward pass, the spec's layer names, kinds and shapes, clear errors for unknown and non-conv
# layers, nothing left attached, and model folders moving both ways between this backend and every
# other one installed. The training checks are skipped: the backend does not declare ``train``.
results = testing.check_backend("numpy")
for result in results:
    print(result.line())
print(testing.summary(results))
