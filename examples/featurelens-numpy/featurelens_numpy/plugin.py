"""The entry point featurelens loads: registers the ``numpy`` backend, cheaply.

``pyproject.toml`` names this module in the ``featurelens`` entry-point group. Registration must
not import anything heavy: ``load`` imports the backend module only when the backend is used.
"""

from __future__ import annotations

from collections.abc import Callable

from featurelens.backends import Backend, BackendEntry, hookimpl


def _load() -> Backend:
    from featurelens_numpy.backend import NumpyBackend

    return NumpyBackend()


@hookimpl
def featurelens_register_backends(register: Callable[[BackendEntry], None]) -> None:
    register(BackendEntry(
        name="numpy",  # must equal NumpyBackend.name
        load=_load,
        requires=("numpy",),
        install="pip install featurelens-numpy",
        description="NumPy inference only (example plugin)",
        priority=0,  # below torch (20) and keras (10): never the default when those are installed
    ))
