"""
Feature maps: how the network sees one image
============================================

Filters are parameters; *feature maps* are what they compute for one image: one 2-D map per
channel. Early maps keep the image's layout and respond to edges and colours; after each pooling
step the maps get coarser and respond to larger, more abstract parts.
"""

# %%
import _helpers

from featurelens import visualize as viz

model = _helpers.seed_model("torch")
data = _helpers.cifar10()
image = data.test_images[:1]
layers = [info.name for info in model.layers() if info.kind == "relu" and info.name.startswith("block")]
maps = model.feature_maps(image, layers)   # one forward pass, every requested layer
print({name: m.shape for name, m in maps.items()})

# %%
# Every channel of the first block
# --------------------------------
shown = viz.to_display(image)[0]
fig = viz.feature_maps_figure(maps["block1_relu1"][0], "block1_relu1", shown)

# %%
# ... and of the last block
# -------------------------
fig = viz.feature_maps_figure(maps["block3_relu2"][0], "block3_relu2", shown)

# %%
# The hierarchy, for several test images
# --------------------------------------
# The eight most active channels of each layer, from edges (32x32) to parts (8x8).
figs = []
for index in (3, 7, 24):
    one = model.feature_maps(data.test_images[index:index + 1], layers)
    title = f"Test image {index} ({data.class_names[data.test_labels[index]]}) through the network"
    figs.append(viz.hierarchy_figure(viz.to_display(data.test_images[index]), {k: v[0] for k, v in one.items()},
                                     title=title))

# sphinx_gallery_multi_image = "single"
