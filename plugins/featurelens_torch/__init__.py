"""The PyTorch backend of featurelens, registered through the ``featurelens`` entry point.

Importing this package does not import torch; :mod:`featurelens_torch.backend` does.
"""
