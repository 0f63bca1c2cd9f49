"""
Train the seed CNN and read its history
=======================================

The seed CNN is the classic CIFAR-10 learner's network: three blocks of two 3x3 convolutions
(32, 64, 128 filters) with batch norm and ReLU, 2x2 max pooling and growing dropout, then a
dense layer of 128 and a 10-way softmax. Training holds out 10% of each class for validation,
stops early when the validation loss stops improving (keeping the best weights) and halves the
learning rate when it plateaus.
"""

# %%
# The model spec
# --------------
# A ``ModelSpec`` is backend-neutral: every backend builds exactly these layers, with these names.
import _helpers

import featurelens as fl
from featurelens import visualize as viz

spec = fl.get_preset("seed")
print(spec.summary())

# %%
# Train
# -----
# For the documentation build we train on 1,000 images per class for 8 epochs (about two
# minutes on a laptop CPU); ``featurelens train --preset seed`` runs the full recipe.
model = _helpers.seed_model("torch")
print(model.history.describe())

# %%
# The history
# -----------
# Training loss keeps falling; validation loss tells when the model stops generalising better.
# Dotted lines mark learning-rate reductions, the star the best epoch, whose weights are kept.
fig = viz.history_figure(model.history)

# %%
# Evaluate on the test set
# ------------------------
data = _helpers.cifar10()
print(model.evaluate(data.test_images, data.test_labels).describe())
