"""The explorer: click through a trained CNN in the browser.

:func:`write_site` writes a static site for a model and a sample of its test images: pick an
image, see its prediction and explanation maps, the feature maps of every layer from input to
head, every channel of a layer and each channel's atlas entry (feature visualization, top
dataset patches, kernel, statistics), the training history and the confusion matrix.
:mod:`featurelens.explore.serve` serves the same page live, for images users drop on it.
"""

from featurelens.explore.export import BUDGET_MB, DEFAULT_IMAGES, SiteSummary, SizeBudgetWarning, write_site
from featurelens.explore.sample import balanced_sample
from featurelens.explore.strip import StripLayer, strip_layers

__all__ = ["BUDGET_MB", "DEFAULT_IMAGES", "SiteSummary", "SizeBudgetWarning", "StripLayer", "balanced_sample",
           "strip_layers", "write_site"]
