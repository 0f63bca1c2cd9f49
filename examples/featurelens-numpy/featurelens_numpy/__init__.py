"""featurelens-numpy: a backend plugin for featurelens that runs models in plain NumPy.

Inference and introspection only (no training): load any featurelens model folder with
``featurelens.load_model(folder, backend="numpy")``, predict, and look at filters and feature
maps without installing PyTorch or Keras.

Importing this package imports nothing heavy: featurelens finds the backend through the
``featurelens`` entry point, :mod:`featurelens_numpy.plugin`, which imports
:mod:`featurelens_numpy.backend` only when the backend is used.
"""

__version__ = "0.1.0"
