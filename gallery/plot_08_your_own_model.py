"""
Bring your own model
====================

You do not need a featurelens spec. Write the network the way you always do -- a
``torch.nn.Module`` or a ``keras.Sequential`` -- and hand it to :func:`featurelens.fit`: it gets the
same training as the built-in CNNs (a stratified validation split, per-channel normalization,
flip-and-shift augmentation, early stopping and learning-rate reduction with Keras's exact rules,
a :class:`~featurelens.History`), and every figure works on it, with its layers named the way you
named them. Saving writes safetensors weights and no pickle; loading takes your class back.
"""

# %%
# A PyTorch module, written as people write them
# ----------------------------------------------
# Logits out (a final softmax works too: featurelens notices and uses the matching loss).
# The forward pass uses ``torch.flatten``, a function rather than a module: hooks cannot see it,
# so it has no feature maps of its own, and featurelens says so with a warning when it lists the
# layers (below) instead of pretending it is not there.
import tempfile
import time

import _helpers
import keras
import numpy as np
import torch
from torch import nn

import featurelens as fl
from featurelens import visualize as viz


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(64, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


data = _helpers.cifar10()
images, labels = fl.per_class_subset(data.train_images, data.train_labels, 300, seed=0)
config = fl.TrainConfig(epochs=5, batch_size=64, augment=True, seed=0)

torch.manual_seed(0)
started = time.perf_counter()
mine = fl.fit(SmallCNN(), images, labels, config, class_names=data.class_names, progress=False)
print(f"trained on {len(labels):,} CIFAR-10 images in {time.perf_counter() - started:.0f} s")
print(mine.history.describe())
print(mine.evaluate(data.test_images, data.test_labels).describe().splitlines()[0])
fig = viz.history_figure(mine.history, title="SmallCNN trained by featurelens")

# %%
# Its layers, under its own names
# -------------------------------
# ``layers()`` lists the modules that ran, in execution order, with their output shapes in the
# canonical channels-last layout; filters and feature maps take the same names.
for info in mine.layers()[:6]:
    print(f"{info.name:<14} {info.kind:<12} {'x'.join(map(str, info.output_shape)):<10} {info.params:>6,}")
fig = viz.filters_figure(mine.filters("features.0"), "features.0")

# %%
maps = mine.feature_maps(data.test_images[:1], ["features.2", "features.6", "features.10"])
fig = viz.hierarchy_figure(viz.to_display(data.test_images[0]), {k: v[0] for k, v in maps.items()},
                           title="SmallCNN: one test image through its three ReLUs")

# %%
# Save it, load it with its class
# -------------------------------
# The folder holds the state dict under PyTorch's own names in a safetensors file, the
# normalization, class names and history. PyTorch cannot describe an architecture without pickling
# code, so loading takes the class (or any function building the model) from you.
folder = mine.save(tempfile.mkdtemp() + "/smallcnn")
again = fl.load_model(folder, model=SmallCNN)
same = np.array_equal(again.predict(data.test_images[:100]), mine.predict(data.test_images[:100]))
print(f"reloaded from {folder.name}: identical predictions: {same}")

# %%
# The same for a Keras Sequential model
# -------------------------------------
# Not even built: no ``Input``, as in most tutorials. Keras describes models made of its own
# layers as JSON, so this folder loads without the code (in Keras's safe mode).
sequential = keras.Sequential([
    keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"), keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"), keras.layers.MaxPooling2D(2),
    keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax", name="probabilities")])
theirs = fl.fit(sequential, images, labels, config.replace(epochs=2), class_names=data.class_names, progress=False)
print(theirs.history.describe())
print(theirs.evaluate(data.test_images, data.test_labels).describe().splitlines()[0])
rebuilt = fl.load_model(theirs.save(tempfile.mkdtemp() + "/sequential"))
print("rebuilt from its JSON config:", type(rebuilt.native).__name__, [i.name for i in rebuilt.layers()][:3])
fig = viz.feature_maps_figure(rebuilt.feature_maps(data.test_images[:1], "conv2")["conv2"][0], "conv2",
                              viz.to_display(data.test_images[0]))
