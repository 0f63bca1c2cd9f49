"""
CIFAR-10 at a glance
====================

CIFAR-10 holds 60,000 colour images of 32x32 pixels in ten classes: 50,000 for training and
10,000 for testing. featurelens loads them as ``uint8`` arrays of shape ``(N, 32, 32, 3)``,
channels last, exactly as stored, with integer labels and the class names.
"""

# %%
# Load the data
# -------------
# ``load_cifar10`` finds an extracted ``cifar-10-batches-py`` folder (``FEATURELENS_DATA_DIR``,
# the user cache, Keras's cache) or downloads and checks the official archive.
import numpy as np

import featurelens as fl
from featurelens import visualize as viz

data = fl.load_cifar10(progress=False)
print(data)
print("images:", data.train_images.shape, data.train_images.dtype, "labels:", data.train_labels.shape)
print("images per class (train):", np.bincount(data.train_labels).tolist())

# %%
# Look at samples
# ---------------
# Eight random training images of every class, drawn as one mosaic image.
fig = viz.samples_figure(data.train_images, data.train_labels, data.class_names, per_class=8)

# %%
# Normalization
# -------------
# Networks train better on inputs centred on zero. The per-channel mean and standard deviation
# come from the training images; a model stores them and normalizes every input it is given,
# and figures always show images un-normalized.
norm = fl.Normalization.from_images(data.train_images)
print("mean (R, G, B):", np.round(norm.mean, 1), " std:", np.round(norm.std, 1))
x = norm.apply(data.train_images[:1000])
print("after normalization: mean", x.mean((0, 1, 2)).round(2), "std", x.std((0, 1, 2)).round(2))

# sphinx_gallery_thumbnail_number = 1
