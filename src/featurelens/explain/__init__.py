"""Why did the model predict that? Attribution maps, written once in numpy for every backend.

Each method takes a :class:`~featurelens.Model` and images as loaded, explains one target class
per image (default: the predicted one) and returns an :class:`Explanation` with (N, H, W) maps:

- from gradients (backends declaring ``Capability.GRADIENTS``): :func:`saliency`,
  :func:`smoothgrad`, :func:`integrated_gradients` (completeness checked per image), and the
  layer CAMs :func:`gradcam`, :func:`gradcam_plus_plus`, :func:`layercam`;
- from forward passes only: :func:`scorecam` and :func:`occlusion`.

:func:`explain` picks one by name. :mod:`featurelens.explain.trust` checks maps:
:func:`randomization_check` (do they depend on the weights?) and :func:`deletion_curve` /
:func:`insertion_curve` (do they point at what the model uses?).
"""

from featurelens.explain.cam import gradcam, gradcam_plus_plus, layercam
from featurelens.explain.dispatch import METHODS, explain
from featurelens.explain.gradients import saliency, smoothgrad
from featurelens.explain.inputs import default_cam_layer
from featurelens.explain.integrated import integrated_gradients
from featurelens.explain.occlusion import occlusion
from featurelens.explain.ranks import rank_correlation, rankdata
from featurelens.explain.result import Explanation, ExplanationWarning
from featurelens.explain.scorecam import scorecam
from featurelens.explain.trust import (
    Curve,
    RandomizationCheck,
    deletion_curve,
    insertion_curve,
    randomization_check,
)
from featurelens.explain.upsample import resize_bilinear

__all__ = [
    "METHODS", "Curve", "Explanation", "ExplanationWarning", "RandomizationCheck", "default_cam_layer",
    "deletion_curve", "explain", "gradcam", "gradcam_plus_plus", "insertion_curve", "integrated_gradients",
    "layercam", "occlusion", "randomization_check", "rank_correlation", "rankdata", "resize_bilinear",
    "saliency", "scorecam", "smoothgrad",
]
