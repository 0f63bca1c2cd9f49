"""
Filters: what each conv layer learned
=====================================

A convolution layer's *filters* are learned parameters: small kernels slid over its input. The
first layer's 3x3x3 kernels act on pixels, so they can be drawn as tiny colour images; deeper
kernels act on the previous layer's channels, so we draw them per input channel or averaged.
"""

# %%
import _helpers

from featurelens import visualize as viz

model = _helpers.seed_model("torch")
print("conv layers:", model.conv_layers())
print("block1_conv1 filters:", model.filters("block1_conv1").shape, "= (C_out, kh, kw, C_in)")

# %%
# First layer: colour and edge detectors
# --------------------------------------
# Each filter is scaled on its own so its pattern is visible; a filter with a dark-to-bright
# gradient responds to edges in that direction, a uniform coloured one to that colour.
fig = viz.filters_figure(model.filters("block1_conv1"), "block1_conv1")

# %%
# Second conv layer, per input channel
# ------------------------------------
# One row per filter, one column per input channel: red weights excite, blue ones inhibit.
fig = viz.filters_figure(model.filters("block1_conv2"), "block1_conv2", mode="channels", scaling="shared")

# %%
# Deeper layers, averaged over their input channels
# -------------------------------------------------
figs = [viz.filters_figure(model.filters(name), name) for name in model.conv_layers()[2:]]

# sphinx_gallery_multi_image = "single"
