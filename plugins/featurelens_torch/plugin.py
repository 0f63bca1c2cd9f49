"""Entry point of the PyTorch backend: registers it exactly as a third-party plugin would."""

from __future__ import annotations

from featurelens.backends import BackendEntry, hookimpl


def _load():
    from featurelens_torch.backend import TorchBackend

    return TorchBackend()


@hookimpl
def featurelens_register_backends(register):
    register(BackendEntry(
        name="torch",
        load=_load,
        requires=("torch",),
        install="pip install 'featurelens[torch]'",
        description="PyTorch: CUDA, Apple MPS or the CPU",
        priority=20,
    ))
