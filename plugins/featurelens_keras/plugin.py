"""Entry point of the Keras 3 backend: registers it exactly as a third-party plugin would.

Keras reads ``KERAS_BACKEND`` once, when it is first imported. featurelens never changes it after
that. Only when Keras is not imported yet, neither ``KERAS_BACKEND`` nor ``~/.keras/keras.json``
chooses an installed backend (Keras would fall back to TensorFlow), does featurelens pick the first
installed of JAX (fastest for this workload), PyTorch and TensorFlow before Keras is imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from featurelens.backends import BackendEntry, hookimpl

PREFERRED = ("jax", "torch", "tensorflow")


def _config_file_backend() -> str | None:
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def choose_keras_backend() -> None:
    """Set ``KERAS_BACKEND`` to an installed framework if, and only if, nothing usable was chosen.

    An explicit ``KERAS_BACKEND`` always wins. ``keras.json`` wins when its framework is installed
    (Keras writes that file with ``tensorflow`` on first import, chosen or not).
    """
    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND"):
        return
    configured = _config_file_backend()
    if configured and importlib.util.find_spec(configured) is not None:
        return
    for name in PREFERRED:
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            return


def _load():
    choose_keras_backend()
    from featurelens_keras.backend import KerasBackend

    return KerasBackend()


@hookimpl
def featurelens_register_backends(register):
    register(BackendEntry(
        name="keras",
        load=_load,
        requires=("keras",),
        install="pip install 'featurelens[keras]' (plus jax or torch for Keras to run on)",
        description="Keras 3 on JAX, PyTorch or TensorFlow (KERAS_BACKEND)",
        priority=10,
    ))
