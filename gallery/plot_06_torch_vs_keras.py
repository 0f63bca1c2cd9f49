"""
The same spec on PyTorch and Keras, side by side
================================================

One ``ModelSpec`` and one ``TrainConfig`` give the same network on both backends, with the same
layer names. Trained separately they learn different filters (their channels come out in a
different order), but with the same weights they compute the same thing, layer for layer.
"""

# %%
# Two trainings of one spec
# -------------------------
import _helpers
import numpy as np

from featurelens import compare
from featurelens import visualize as viz
from featurelens.convert import convert_model

data = _helpers.cifar10()
torch_model = _helpers.seed_model("torch")
keras_model = _helpers.seed_model("keras")
print("Keras runs on:", keras_model.backend.keras_backend)
for model in (torch_model, keras_model):
    result = model.evaluate(data.test_images, data.test_labels)
    h = model.history
    print(f"{model.backend.name:>6}: test accuracy {result.accuracy:.2%} after {len(h.epochs)} epochs "
          f"({h.total_seconds:.0f} s)")

labels = ("PyTorch", "Keras")
fig = viz.comparison_histories_figure((torch_model.history, keras_model.history), labels)

# %%
# First-layer filters
# -------------------
# Figures only ever see arrays: the models hand over their kernels, the figure draws them.
kernels = [model.filters("block1_conv1") for model in (torch_model, keras_model)]
fig = viz.comparison_filters_figure(kernels, labels, "block1_conv1")

# %%
# Feature maps of the same image, with a per-layer difference
# -----------------------------------------------------------
layers = ["block1_relu2", "block2_relu2", "block3_relu2"]
maps = [{k: v[0] for k, v in model.feature_maps(data.test_images[:1], layers).items()}
        for model in (torch_model, keras_model)]
fig = viz.comparison_feature_maps_figure(data.test_images[0], maps, labels)

# %%
# Same weights, same computation
# ------------------------------
# Moving the PyTorch weights into a Keras model (``featurelens convert``) gives the same feature
# maps everywhere, up to float32 rounding, and the same test accuracy.
converted = convert_model(torch_model, "keras")
differences = compare.feature_map_differences(torch_model, converted, data.test_images[:64])
print("largest relative difference:", max(d.relative_difference for d in differences))
same = np.mean(converted.predict(data.test_images).argmax(1) == torch_model.predict(data.test_images).argmax(1))
print(f"identical predictions on {same:.2%} of the test set")
fig = viz.comparison_differences_figure(differences)
