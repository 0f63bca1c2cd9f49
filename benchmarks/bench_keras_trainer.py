"""featurelens's Keras trainer vs a plain ``model.fit``: same model, same data, one run.

Both sides build the seed CNN fresh each repeat (so both pay Keras's tracing/compilation), compile
it with Adam 1e-3 and sparse categorical cross-entropy, and fit batch 64 with validation after
every epoch. featurelens adds its epoch recorder (history, timing, learning rate); early stopping
and LR reduction are off on both sides. Runs alternate after one untimed warm-up of each.

    KERAS_BACKEND=jax FEATURELENS_DATA_DIR=... python benchmarks/bench_keras_trainer.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from featurelens_keras.plugin import choose_keras_backend

choose_keras_backend()

import keras  # noqa: E402
from _common import machine_info, report  # noqa: E402

import featurelens as fl  # noqa: E402


def plain_model() -> keras.Model:
    """The seed CNN as a Keras user writes it."""
    def block(filters, drop):
        return [keras.layers.Conv2D(filters, 3, padding="same"), keras.layers.BatchNormalization(),
                keras.layers.ReLU(), keras.layers.Conv2D(filters, 3, padding="same"),
                keras.layers.BatchNormalization(), keras.layers.ReLU(), keras.layers.MaxPooling2D(2),
                keras.layers.Dropout(drop)]
    head = [keras.layers.Flatten(), keras.layers.Dense(128), keras.layers.BatchNormalization(),
            keras.layers.ReLU(), keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")]
    return keras.Sequential([keras.Input((32, 32, 3)), *block(32, 0.2), *block(64, 0.3), *block(128, 0.4), *head])


def plain_fit(train, val, epochs: int, seed: int) -> float:
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = plain_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(train[0], train[1], batch_size=64, epochs=epochs, validation_data=val, verbose=0)
    return time.perf_counter() - start


def featurelens_fit(train, val, epochs: int, seed: int) -> float:
    backend = fl.get_backend("keras")
    spec = fl.get_preset("seed")
    config = fl.TrainConfig(epochs=epochs, batch_size=64, early_stopping=None, reduce_lr=None, seed=seed)
    start = time.perf_counter()
    model = backend.build(spec, seed)
    backend.fit(model, spec, train, val, config, progress=False)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-images", type=int, default=5000)
    p.add_argument("--val-images", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out")
    args = p.parse_args()
    data = fl.load_cifar10(download=False, progress=False)
    n, m = args.train_images, args.val_images
    norm = fl.Normalization.from_images(data.train_images[:n])
    train = (norm.apply(data.train_images[:n]), data.train_labels[:n])
    val = (norm.apply(data.train_images[n:n + m]), data.train_labels[n:n + m])
    sides = {"plain": lambda s: plain_fit(train, val, args.epochs, s),
             "featurelens": lambda s: featurelens_fit(train, val, args.epochs, s)}
    for side in sides.values():
        side(99)
    times: dict[str, list[float]] = {"plain": [], "featurelens": []}
    for r in range(args.repeats):
        for name in (["plain", "featurelens"] if r % 2 == 0 else ["featurelens", "plain"]):
            times[name].append(sides[name](r))
            print(f"repeat {r + 1} {name:<12} {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    rate = {k: n * args.epochs / statistics.median(v) for k, v in times.items()}
    gpu = None
    if keras.backend.backend() == "jax":
        import jax
        gpu = str(jax.devices()[0])
    elif keras.backend.backend() == "torch":
        import torch
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    result = {"benchmark": "Keras trainer throughput, seed CNN, batch 64, fp32, Adam",
              "keras_backend": keras.backend.backend(), "keras": keras.__version__, "device": gpu or "cpu",
              "train_images": n, "val_images": m, "epochs": args.epochs, "repeats": args.repeats,
              "seconds": times, "images_per_second": rate,
              "ratio_featurelens_over_plain": rate["featurelens"] / rate["plain"],
              "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}
    report(result, args.out)


if __name__ == "__main__":
    main()
