"""
What each channel detects
=========================

A filter drawn as 3x3 coloured squares says little about what its channel responds to, and deeper
filters say even less. Two established answers, tied together per channel in featurelens's
*channel atlas*:

- **dataset examples** (Zeiler & Fergus, 2014; OpenAI Microscope): stream the 10,000 test images
  through the model and keep, per channel, the images that excite it most and where; crop the part
  of the image the unit at that position sees, its *receptive field*, computed exactly from the
  spec's kernels, strides and padding;
- **feature visualization** (Olah et al., Distill 2017): optimize an image, from noise, to
  maximize the channel's mean activation, with a decorrelated-colour Fourier parameterization,
  small jitter and scale transforms sized for 32-pixel images, and light regularization.

Beside them the atlas gives each channel's statistics: its mean activation, the fraction of images
on which it is never active (dead channels say so) and its mean activation per class.
"""

# %%
# One streaming pass over the test set
# ------------------------------------
# ``dataset_examples`` keeps only a running top 9 per channel (and per-class sums), so its memory
# does not grow with the dataset; the position of each maximum gives the receptive field to crop.
import _helpers
import numpy as np

from featurelens import atlas
from featurelens.atlas.featurevis import feature_visualization
from featurelens.visualize.atlas import channel_atlas_figure, examples_in_context_figure

model = _helpers.seed_model("torch")
data = _helpers.cifar10()
layers = atlas.default_atlas_layers(model)  # each block's last conv layer
found = atlas.dataset_examples(model, data.test_images, layers, top=9, labels=data.test_labels)
for name in layers:
    ex = found[name]
    print(f"{name}: read at {ex.measured_at}, receptive field {ex.field.size[0]} px "
          f"(one unit every {ex.field.jump[0]} px), dead channels: {int(ex.stats.dead.sum())} of {ex.channels}")

# %%
# Feature visualization of the most class-selective channels
# ----------------------------------------------------------
# The most class-selective channels of each block (class selectivity index, Morcos et al. 2018),
# optimized together in one batch: 256 steps of Adam in a decorrelated Fourier basis whose colour
# correlation is estimated from the training images.
SHOWN = 10
colour = data.train_images[:5000]
vis = {}
for name in layers:
    ex = found[name]
    chosen = np.sort(np.argsort(-ex.stats.selectivity)[:SHOWN])
    vis[name] = (chosen, feature_visualization(model, name, channels=chosen, steps=256, colour=colour,
                                               progress=False))


def atlas_figure(name: str):
    ex = found[name]
    chosen, result = vis[name]
    images = np.zeros((ex.channels, *result.images.shape[1:]), np.float32)
    images[chosen] = result.images
    return channel_atlas_figure(name, chosen, kernels=model.filters(name), feature_vis=images,
                                patches=ex.patches(data.test_images), mean=ex.stats.mean,
                                never_active=ex.stats.never_active, class_mean=ex.stats.class_mean,
                                class_names=data.class_names, measured_at=ex.measured_at,
                                title=f"{name}: its {SHOWN} most class-selective channels")


# %%
# Block 1: colours and edges
# --------------------------
# The 32x32 maps of block 1 see 6x6 patches (after ``block1_conv2``: 5x5): colour blobs, edges in
# one orientation, light-dark boundaries.
fig = atlas_figure(layers[0])

# %%
# Block 2: textures and motifs
# ----------------------------
# A 14x14 field: edges against the sky, horizontal lines, red surfaces, thin upright shapes such
# as legs; many channels already prefer a class (the blue bar).
fig = atlas_figure(layers[1])

# %%
# Block 3: parts of objects
# -------------------------
# Units of ``block3_conv2`` see the whole 32x32 image (patches past the border are gray): frog
# skin, aircraft against the sky, red cars and trucks, hulls on water. Their per-class profiles
# show which class each one argues for. Their optimized images are textures rather than objects:
# at 32 pixels, and after a short training, what drives a channel most is the colour and
# orientation statistics of its patches.
fig = atlas_figure(layers[2])

# %%
# The top images of one channel, in context
# -----------------------------------------
# The most class-selective channel of block 2, with the part of each image its unit sees outlined.
ex = found[layers[1]]
channel = int(np.argmax(ex.stats.selectivity))
top = ex.indices[channel]
fig = examples_in_context_figure(data.test_images[top], ex.boxes[channel], ex.values[channel],
                                 [data.class_names[data.test_labels[i]] for i in top], channel=channel,
                                 layer=layers[1])

# %%
# From the command line
# ---------------------
# ``featurelens atlas MODEL_DIR`` writes the same figures for every channel (pages of 32), the
# top images of the most selective channels and every array (``.npz``)::
#
#     featurelens atlas runs/seed-torch                  # each block's last conv layer
#     featurelens atlas runs/seed-torch --all --top 16   # every conv layer
#     featurelens atlas runs/seed-torch --layer block3_conv2 --split train --steps 512
