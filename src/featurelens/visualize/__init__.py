"""Figures of what a CNN learned and how it sees, from numpy arrays in the canonical layouts.

Every function returns a :class:`matplotlib.figure.Figure` (it never calls ``show``), so it
works for every backend, in notebooks, scripts and docs; the ``*_mosaic``, ``sample_indices``,
``top_k`` and ``confident_mistakes`` helpers give the same content as arrays. The
``*_figure`` functions of :mod:`featurelens.visualize.explanations` draw the attribution maps of
:mod:`featurelens.explain` over their images, those of :mod:`featurelens.visualize.atlas` the channel
atlas of :mod:`featurelens.atlas`, and those of :mod:`featurelens.visualize.drift` how filters and
layers changed during training (snapshots, CKA).
"""

from featurelens.visualize.atlas import channel_atlas_figure, examples_in_context_figure, top_patches_figure
from featurelens.visualize.comparison import (
    comparison_differences_figure,
    comparison_feature_maps_figure,
    comparison_filters_figure,
    comparison_histories_figure,
)
from featurelens.visualize.drift import (
    cka_heatmap_figure,
    filter_frames,
    filters_over_epochs_figure,
    write_filters_gif,
)
from featurelens.visualize.explanations import (
    all_classes_figure,
    deletion_insertion_figure,
    explanation_overlay_figure,
    methods_grid_figure,
    mistakes_explained_figure,
)
from featurelens.visualize.feature_maps import (
    feature_map_mosaic,
    feature_maps_figure,
    hierarchy_figure,
    strongest_channels,
)
from featurelens.visualize.filters import filter_mosaic, filters_figure
from featurelens.visualize.history import history_figure
from featurelens.visualize.images import to_display
from featurelens.visualize.mosaic import mosaic
from featurelens.visualize.notice import notice_figure
from featurelens.visualize.predictions import (
    confident_mistakes,
    confusion_figure,
    predictions_figure,
    top_k,
    topk_figure,
)
from featurelens.visualize.samples import sample_indices, samples_figure, samples_mosaic

__all__ = [
    "channel_atlas_figure", "examples_in_context_figure", "top_patches_figure",
    "cka_heatmap_figure", "filter_frames", "filters_over_epochs_figure", "write_filters_gif",
    "all_classes_figure", "deletion_insertion_figure", "explanation_overlay_figure", "methods_grid_figure",
    "mistakes_explained_figure",
    "comparison_differences_figure", "comparison_feature_maps_figure", "comparison_filters_figure",
    "comparison_histories_figure",
    "confident_mistakes", "confusion_figure", "feature_map_mosaic", "feature_maps_figure",
    "filter_mosaic", "filters_figure", "hierarchy_figure", "history_figure", "mosaic", "notice_figure",
    "predictions_figure", "sample_indices", "samples_figure", "samples_mosaic", "strongest_channels",
    "to_display", "top_k", "topk_figure",
]
