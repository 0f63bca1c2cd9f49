"""
How the filters formed
======================

A trained network is the end of a process. With ``snapshot_every=1`` (``featurelens train
--snapshot-every 1``) the trainer records, after every epoch, each conv layer's kernels and what
each conv layer computes for a small fixed probe batch of held-out images, in the model folder
(``snapshots.safetensors``: float16 kernels and 4x4-pooled maps, about 1 MB per snapshot of the
seed CNN, 64 MB at most). From them: the first-layer filters across epochs, and *linear CKA*
(Kornblith et al., 2019), a similarity of two representations of the same images that ignores
rotations and scale, of each layer at each epoch against the trained model.
"""

# %%
# The first-layer filters, epoch by epoch
# ---------------------------------------
# Row 0 is the model as initialized (random kernels); each later row one epoch; the last, the
# weights training returned. Each filter is scaled on its own, so its shape shows. In this short
# training (8 epochs of Adam on 10,000 images, batch norm after every conv) the first-layer kernels
# keep much of their random start: they move about a third of their size away from it (printed
# below), most in the first epochs, and sharpen rather than change shape.
import _helpers
import numpy as np

from featurelens.atlas.cka import cka_over_training
from featurelens.compare import feature_map_differences
from featurelens.visualize import cka_heatmap_figure, filters_over_epochs_figure

model = _helpers.seed_model("torch")
snapshots = model.snapshots
labels, kernels = snapshots.layer_filters("block1_conv1")
fig = filters_over_epochs_figure(kernels, labels, "block1_conv1")
start = kernels[0].astype(np.float64)
for label, k in zip(labels[1:], kernels[1:]):
    change = np.linalg.norm(k - start) / np.linalg.norm(start)
    print(f"{label:>16}: |W - W0| / |W0| = {change:.1%}")

# %%
# With one scale for all epochs, changes in the kernels' strength show too.
fig = filters_over_epochs_figure(kernels, labels, "block1_conv1", scaling="shared")

# %%
# When each layer settled
# -----------------------
# CKA of each layer's probe representation at each epoch against the trained model. A row of
# ones means the layer already computed what it computes at the end. The first layers settle
# within an epoch or two; the deepest keep changing until the end.
cka = cka_over_training(snapshots)
fig = cka_heatmap_figure(cka, [f"epoch {e}" for e in snapshots.epochs], snapshots.layers,
                         probe=len(snapshots.probe))
for layer, column in zip(snapshots.layers, cka.T):
    print(f"{layer:>14}: CKA with the trained model as initialized {column[0]:.2f}, after epoch 1 "
          f"{column[1]:.2f}, after epoch {snapshots.epochs[len(column) // 2]} {column[len(column) // 2]:.2f}")

# %%
# Two trainings of one spec, compared
# -----------------------------------
# The same spec and seed trained by the Keras backend starts from other random weights and sees
# the batches in another order. Layer by layer, how alike are the two networks' representations
# of the same 256 test images? ``featurelens compare DIR_A DIR_B`` prints the same table.
keras_model = _helpers.seed_model("keras")
data = _helpers.cifar10()
for row in feature_map_differences(model, keras_model, data.test_images[:256]):
    if row.layer.split("_")[-1].startswith("conv"):
        print(f"{row.layer:>14}: linear CKA {row.cka:.2f}")
