"""Training on several devices in one process: ``keras.distribution.DataParallel`` (JAX).

``featurelens train --backend keras --devices N`` sets Keras's global distribution to data
parallelism over the first N devices before the model is built, so the model's variables are
replicated on them and ``model.fit`` splits every batch across them: each device computes its part
of the batch and XLA sums the gradients, so training is the single-device computation (batch norm
included: its statistics are taken over the whole batch) spread over the devices. featurelens's
batches leave out a last batch that does not divide evenly over the devices. Keras's distribution
API runs on JAX only. On a CPU, JAX shows several devices with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before JAX is imported (how the tests
simulate two devices). From Python, set the distribution yourself before building the model::

    keras.distribution.set_distribution(keras.distribution.DataParallel())
"""

from __future__ import annotations

import keras

from featurelens.backends import BackendError


def use_devices(devices: int) -> None:
    """Data parallelism over the first ``devices`` devices Keras sees (accelerators first)."""
    if keras.backend.backend() != "jax":
        raise BackendError(f"the keras backend trains on several devices with keras.distribution, which runs on JAX "
                           f"only, and Keras runs on {keras.backend.backend()} here; set KERAS_BACKEND=jax, or use "
                           "--backend torch (torchrun)")
    available = keras.distribution.list_devices()
    if len(available) < devices:
        seen = ", ".join(available)
        raise BackendError(f"{devices} devices were asked for but Keras sees {len(available)} ({seen}); ask for "
                           "fewer, or on a CPU set XLA_FLAGS=--xla_force_host_platform_device_count="
                           f"{devices} before starting")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=available[:devices]))
