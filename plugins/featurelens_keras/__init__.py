"""The Keras 3 backend of featurelens (on Keras's JAX, PyTorch or TensorFlow backend).

Importing this package does not import Keras; :mod:`featurelens_keras.backend` does.
"""
