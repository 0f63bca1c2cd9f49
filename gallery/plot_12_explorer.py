"""
Click through the model: the explorer
=====================================

Figures answer the questions their author thought of; the explorer lets a reader ask their own.
``featurelens explore MODEL_DIR`` (or :func:`featurelens.explore.write_site`) writes a static site
for a model and a sample of its test images: pick an image and see its prediction, where the model
looked (Grad-CAM, saliency, SmoothGrad, Integrated Gradients), and what every layer made of it
from input to head; open a layer to see all its channels, open a channel to see what it detects
across the test set (feature visualization, top patches, kernel, statistics); read the training
history and the confusion matrix, whose cells list their images.

**Open the explorer of this gallery's model:** `explorer/index.html <../explorer/index.html>`_
(it works from disk too: the site is HTML, CSS, JavaScript and images, with no server and nothing
fetched from elsewhere).
"""

# %%
# Write the site
# --------------
# The documentation build writes a small explorer (100 images, the atlas over 2,000 test images,
# 48 feature-visualization steps) into the site's extra files, next to these pages. The command's
# defaults (300 images, the whole test set, 128 steps) take a few minutes on 2 CPU cores.
import _helpers

from featurelens import visualize as viz
from featurelens.explore import write_site

model = _helpers.seed_model("torch")
data = _helpers.cifar10()
summary = write_site(model, data, _helpers.EXPLORER, images=100, atlas_images=2000, steps=48, progress=False)
print(f"{summary.images} images, {summary.megabytes:.1f} MB, written in {summary.seconds['total']:.0f} s")
print({stage: round(seconds, 1) for stage, seconds in summary.seconds.items()})

# %%
# What its strip shows
# --------------------
# For every sampled image the site keeps every channel of every activation and pooling layer (8-bit,
# packed into one lossless WebP sheet per image) and the model's outputs. This is the same strip as
# a figure, for the first sampled image: the most active channels of each layer, shallow to deep.
first = data.test_images[:1]
maps = model.feature_maps(first)
layers = [name for name in maps if name.endswith(("relu1", "relu2", "pool")) and maps[name].ndim == 4]
fig = viz.hierarchy_figure(viz.to_display(first[0]), {name: maps[name][0] for name in layers}, channels=6)

# %%
# From the command line
# ---------------------
# ::
#
#     featurelens explore runs/seed-torch                      # 300 images -> runs/seed-torch/explorer
#     featurelens explore runs/seed-torch --images 100 --steps 48 --atlas-images 2000
#     featurelens explore runs/seed-torch --serve              # live: drop your own images on the page
#
# ``--serve`` needs ``pip install "featurelens[serve]"`` (Flask and waitress) and listens on
# ``http://127.0.0.1:8000/`` only.
