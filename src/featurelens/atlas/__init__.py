"""What each channel detects, and how the channels formed in training.

- :func:`dataset_examples`: the images that excite each channel most, streamed with a running
  top-k per channel, with statistics (mean activation, never-active fraction, per-class means);
- receptive fields: :func:`spec_fields` (exact, from a spec), :func:`estimate_field` (from input
  gradients, for models users built), :func:`receptive_field` (whichever applies);
- :func:`feature_visualization` / :func:`class_visualization`: images optimized to excite each
  channel (or class), on top of the backend's gradients;
- :func:`channel_atlas`: all of it per conv layer, as a :class:`ChannelAtlas`;
- snapshots taken during training (:mod:`featurelens.atlas.snapshots`) and linear CKA
  (:func:`linear_cka`, :func:`cka_over_training`).

Everything here is numpy on top of the backend contract; figures are in
:mod:`featurelens.visualize.atlas` and :mod:`featurelens.visualize.drift`.
"""

from featurelens.atlas.channels import ChannelAtlas, channel_atlas, default_atlas_layers
from featurelens.atlas.cka import cka_over_training, linear_cka
from featurelens.atlas.examples import ChannelStats, LayerExamples, dataset_examples, measured_layer
from featurelens.atlas.featurevis import FeatureVisualization, class_visualization, feature_visualization
from featurelens.atlas.receptive import ReceptiveField, crop, estimate_field, receptive_field, spec_fields
from featurelens.atlas.snapshots import Snapshots

__all__ = [
    "ChannelAtlas", "ChannelStats", "FeatureVisualization", "LayerExamples", "ReceptiveField", "Snapshots",
    "channel_atlas", "cka_over_training", "class_visualization", "crop", "dataset_examples",
    "default_atlas_layers", "estimate_field", "feature_visualization", "linear_cka", "measured_layer",
    "receptive_field", "spec_fields",
]
