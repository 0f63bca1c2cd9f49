"""The ``featurelens`` command line: backends, datasets, loggers, spec, train, evaluate, visualize, explain,
atlas, explore, convert, compare, verify, demo.

Every error, a bad flag included, is one line on stderr and exit status 2 (``--traceback`` shows the
rest); only a bug (an exception featurelens did not expect) exits 1, with a line asking for a report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from featurelens import cli_atlas, cli_data, cli_explain, cli_explore, cli_logs, cli_run, distributed, testing
from featurelens._version import __version__
from featurelens.backends.registry import get_backend, registry
from featurelens.checkpoint import check_new_run_folder, open_run
from featurelens.checks import parse_json
from featurelens.compare import check_comparable, feature_map_differences
from featurelens.config import DEVICES, MAX_EPOCHS, OPTIMIZERS, EarlyStopping, ReduceLROnPlateau, TrainConfig
from featurelens.convert import convert_model
from featurelens.data import available_datasets
from featurelens.data.dataset import Dataset
from featurelens.errors import BackendError, ConfigError, FeaturelensError, InputError, SpecError
from featurelens.folder_check import accept_folder, verify_folder
from featurelens.model import Model, load_model
from featurelens.modeldir import EVALUATION_FILE, SNAPSHOTS_FILE, read_metadata, write_evaluation
from featurelens.presets import adapt_spec, available_presets, get_preset, recipe_config
from featurelens.spec import ModelSpec
from featurelens.training import resume, train

DEMO_TRAIN_PER_CLASS = 1000
DEMO_EPOCHS = 10


def _add_data_args(p: argparse.ArgumentParser) -> None:
    cli_data.add_data_args(p)  # --dataset, --data-dir, image-folder options: see featurelens.cli_data


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from featurelens.config import COMPILE_MODES, LR_SCHEDULES, PRECISIONS  # here: edits stay in this function
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", default=None, help="a named spec (see `featurelens spec --list`); default seed")
    g.add_argument("--spec", type=Path, help="a ModelSpec JSON file")
    p.add_argument("--backend", help="torch, keras, ... (default: $FEATURELENS_BACKEND, else the first installed)")
    p.add_argument("--config", type=Path, help="a TrainConfig JSON file; flags below override it")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float)
    p.add_argument("--validation-split", type=float)
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    p.add_argument("--no-early-stopping", action="store_true")
    p.add_argument("--lr-patience", type=int, help="epochs without improvement before the LR is reduced")
    p.add_argument("--lr-factor", type=float, help="factor the LR is multiplied by on a plateau")
    p.add_argument("--min-lr", type=float)
    p.add_argument("--no-reduce-lr", action="store_true")
    p.add_argument("--augment", action="store_true", default=None, help="random flips and 4-pixel shifts")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help=f"one of {', '.join(DEVICES)} or cuda:N")
    p.add_argument("--label-smoothing", type=float, help="smooth the targets towards uniform by this much")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="per-step factor on the LR (default constant)")
    p.add_argument("--warmup-epochs", type=float, help="epochs of linear LR warm-up (fractions allowed)")
    p.add_argument("--weight-averaging", type=float, metavar="DECAY",
                   help="train and return an exponential moving average of the weights (e.g. 0.99); 0: off")
    p.add_argument("--precision", choices=PRECISIONS, help="auto: bf16 on GPUs that support it, else fp32")
    p.add_argument("--compile", choices=COMPILE_MODES, help="compile the training step (auto: on CUDA only)")
    p.add_argument("--train-per-class", type=int, help="train on this many images per class")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    cli_logs.add_log_args(p)  # --log NAME, --log-dir DIR: see featurelens.cli_logs


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (and status 2) like every other error, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; `{self.prog} --help` lists the options\n")


def count(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high:,}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="featurelens",
        description="Build, train and look inside CNNs on CIFAR-10, MNIST or your own images with PyTorch or "
                    "Keras 3.")
    parser.add_argument("--version", action="version", version=f"featurelens {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, show the full Python traceback after the one-line message")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("backends", help="list backends, whether they are installed and how to install them")
    sub.add_parser("datasets", help="list the datasets --dataset accepts (built-in and from plugins)")
    sub.add_parser("loggers", help="list the experiment loggers --log accepts (built-in and from plugins)")

    p = sub.add_parser("spec", help="show a preset's layers and parameter count, or its JSON")
    p.add_argument("preset", nargs="?", default="seed")
    p.add_argument("--json", action="store_true", help="print the spec as JSON (a starting point for --spec)")
    p.add_argument("--list", action="store_true", help="list the available presets")

    p = sub.add_parser("train", help="train a spec on a dataset (CIFAR-10 by default) and write a model folder")
    _add_train_args(p)
    p.add_argument("--snapshot-every", type=int, metavar="N",
                   help="every N epochs, record the conv filters and the feature maps of a fixed probe batch "
                        "in the model folder (snapshots.safetensors), to see how they formed; 0: never")
    _add_data_args(p)
    p.add_argument("--out", type=Path, default=None, help="the run folder: checkpoints while training, the model "
                   "folder at the end (default runs/<spec>-<backend>)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (a model or an unfinished run)")
    cli_run.add_run_args(p)

    p = sub.add_parser("evaluate", help="test accuracy, loss and per-class accuracy of a model folder")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--tta", choices=("flip",), default=None,
                   help="test-time augmentation: average each image's prediction with its mirror's")
    _add_data_args(p)

    p = sub.add_parser("visualize", help="write every figure of a model folder as PNG plus index.html")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output folder (default MODEL_DIR/figures)")
    p.add_argument("--image-index", type=int, default=0, help="test image used for the feature maps")
    _add_data_args(p)

    cli_explain.add_parser(sub, _add_data_args)
    cli_atlas.add_parser(sub, _add_data_args)
    cli_explore.add_parser(sub, _add_data_args)

    p = sub.add_parser("convert", help="the same model on another backend (weights, statistics, history)")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--to", required=True, help="target backend, e.g. keras or torch")
    p.add_argument("--out", type=Path, default=None, help="output folder (default MODEL_DIR-<backend>)")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("compare", help="two models of the same spec side by side (two backends or checkpoints)")
    p.add_argument("model_a", type=Path)
    p.add_argument("model_b", type=Path)
    p.add_argument("--out", type=Path, default=Path("comparison"), help="output folder")
    p.add_argument("--image-index", type=int, default=0, help="test image used for the feature maps")
    _add_data_args(p)

    p = sub.add_parser("verify", help="check a model folder against the hashes recorded when it was saved; "
                       "--accept records new ones for a folder changed on purpose")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--accept", action="store_true",
                   help="once every part passes its checks (the weights readable, finite and fitting the spec; the "
                        "history and snapshots intact), record the folder's current hashes")

    p = sub.add_parser("check-backend", help="run the conformance kit on a backend (one line per check)")
    p.add_argument("backend", help="the backend's name, as `featurelens backends` lists it")
    p.add_argument("--only", action="append", metavar="CHECK",
                   help="run only this check (repeatable); `--list` shows the names")
    p.add_argument("--list", action="store_true", help="list the checks and what they verify")
    p.add_argument("--no-cross-backend", action="store_true",
                   help="skip the checks that load this backend's folders in the other installed backends")

    p = sub.add_parser("demo", help="the whole workflow (on CIFAR-10 by default), sized for a few CPU minutes")
    p.add_argument("--out", type=Path, default=Path("featurelens-demo"), help="output folder")
    p.add_argument("--backend")
    p.add_argument("--full", action="store_true",
                   help="the full recipe: all 50,000 images, up to 100 epochs with early stopping")
    p.add_argument("--train-per-class", type=count(1, 10**9), default=None,
                   help=f"training images per class (default {DEMO_TRAIN_PER_CLASS}, all with --full)")
    p.add_argument("--epochs", type=count(1, MAX_EPOCHS), default=None,
                   help=f"epoch cap (default {DEMO_EPOCHS}, 100 with --full)")
    p.add_argument("--device")
    p.add_argument("--no-progress", action="store_true")
    _add_data_args(p)
    return parser


def _read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from exc


def _load_spec(args: argparse.Namespace) -> ModelSpec:
    if getattr(args, "spec", None):
        data = parse_json(_read_input(args.spec, "spec"), SpecError, f"the spec file {args.spec}",
                          "write the spec as a JSON object (`featurelens spec seed --json` is a start)")
        try:
            return ModelSpec.from_dict(data)
        except SpecError as exc:
            raise SpecError(f"{args.spec}: {exc}") from exc
    return get_preset(args.preset or "seed")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    base = {}
    if args.config:
        base = parse_json(_read_input(args.config, "config"), ConfigError, f"the config file {args.config}",
                          "write it as a JSON object of TrainConfig fields")
    try:
        config = recipe_config(getattr(args, "preset", None), base)  # the preset's recipe, then --config
    except ConfigError as exc:
        raise ConfigError(f"{args.config}: {exc}" if args.config else str(exc)) from exc
    flat = {k: getattr(args, k, None) for k in ("epochs", "batch_size", "optimizer", "learning_rate",
                                                "validation_split", "augment", "seed", "device",
                                                "label_smoothing", "lr_schedule", "warmup_epochs",
                                                "weight_averaging", "precision", "compile")}
    config = config.replace(**{k: v for k, v in flat.items() if v is not None}, **cli_run.config_changes(args))
    es, rl = config.early_stopping, config.reduce_lr
    if args.no_early_stopping:
        es = None
    elif args.patience is not None:
        es = EarlyStopping(**{**(es.__dict__ if es else {}), "patience": args.patience})
    if args.no_reduce_lr:
        rl = None
    else:
        changes = {k: v for k, v in (("patience", args.lr_patience), ("factor", args.lr_factor),
                                     ("min_lr", args.min_lr)) if v is not None}
        if changes:
            rl = ReduceLROnPlateau(**{**(rl.__dict__ if rl else {}), **changes})
    return config.replace(early_stopping=es, reduce_lr=rl)


def _load_data(args: argparse.Namespace, train_per_class: int | None = None, model: object = None
               ) -> tuple[Dataset, cli_data.DataChoice]:
    """The data the flags (else the model's record of its training data) ask for, and that choice."""
    choice = cli_data.resolve(args, cli_data.recorded(model))
    return cli_data.load(args, choice, train_per_class), choice


def _fit_to_data(spec: ModelSpec, data: Dataset, args: argparse.Namespace) -> ModelSpec:
    """The spec with the dataset's input shape and class count (a SpecError if it cannot take them)."""
    what = f"the spec in {args.spec}" if getattr(args, "spec", None) else f"the preset {spec.name!r}"
    return adapt_spec(spec, data.input_shape, len(data.class_names), what=what)


def _cmd_backends(args: argparse.Namespace) -> int:
    statuses = registry.status()
    if not statuses:
        print("No backend is registered. Install one with: pip install 'featurelens[torch]'")
    for s in statuses:
        state = "installed" if s.installed else f"not installed ({s.install})"
        print(f"{s.name:<10} {state:<45} {s.description}")
    for failure in registry.failures:
        print(f"plugin {failure.name!r} ({failure.target}) failed to load: {failure.error}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    for name, entry in available_datasets().items():
        shape = "x".join(map(str, entry.input_shape)) if entry.input_shape else "?"
        classes = f"{entry.num_classes} classes" if entry.num_classes else ""
        print(f"{name:<15} {shape:<9} {classes:<12} {entry.description}")
    print(f"{cli_data.IMAGE_FOLDER:<15} {'H x W x C':<9} {'per folder':<12} your images: --dataset "
          f"{cli_data.IMAGE_FOLDER} --data-dir ROOT (ROOT/<class>/*.png), --image-size H W, --channels 1|3")
    for failure in registry.failures:
        print(f"plugin {failure.name!r} ({failure.target}) failed to load: {failure.error}")
    return 0


def _cmd_spec(args: argparse.Namespace) -> int:
    if args.list:
        for name, factory in sorted(available_presets().items()):
            spec = factory()
            summary = (factory.__doc__ or "").strip().splitlines()[0]
            print(f"{name:<10} {spec.parameter_count():>10,} parameters  {summary}")
        return 0
    spec = get_preset(args.preset)
    print(spec.to_json() if args.json else spec.summary())
    return 0


def _say(*lines: str) -> None:
    """Print on the main process only (every process of a data-parallel run runs the command)."""
    if distributed.is_main_process():
        print(*lines, sep="\n")


def _cmd_train(args: argparse.Namespace) -> int:
    if args.resume is not None:
        return _cmd_resume(args)
    spec = _load_spec(args)
    config = _train_config(args)
    if args.snapshot_every is not None:
        config = config.replace(snapshot_every=args.snapshot_every)
    cli_data.resolve(args)  # bad data flags fail before a backend is loaded
    backend = get_backend(args.backend)
    out = args.out or Path("runs") / f"{spec.name}-{backend.name}"
    if distributed.is_main_process():
        check_new_run_folder(out, args.overwrite)
    log_dir = cli_logs.log_dir(args, out)
    devices = cli_run.devices_for(args)
    launched = cli_run.launch(backend, devices, args.argv)
    if launched is not None:
        return cli_run.launched(launched, out)
    data, choice = _load_data(args, args.train_per_class)
    spec = _fit_to_data(spec, data, args)
    _say(f"Training {spec.name} ({spec.parameter_count():,} parameters) on {len(data.train_labels):,} "
         f"images of {cli_data.describe(data)} with the {backend.name} backend{_on(devices)}, up to "
         f"{config.effective_epochs()} epochs; run folder {out}")
    info = {cli_data.RECORD_KEY: choice.record(), "train_per_class": args.train_per_class, "devices": devices}
    model = train(spec, data.train_images, data.train_labels, config, backend=backend,
                  class_names=data.class_names, progress=not args.no_progress, run_dir=out,
                  overwrite=args.overwrite, run_info=info, loggers=args.log or (), log_dir=log_dir)
    return _trained(model, out, data, args, log_dir)


def _on(devices: int) -> str:
    processes = distributed.world_size()
    return f" on {processes} processes" if processes > 1 else f" on {devices} devices" if devices > 1 else ""


def _cmd_resume(args: argparse.Namespace) -> int:
    cli_run.check_resume_flags(args)
    run = open_run(args.resume)
    if args.backend is not None and args.backend != run.backend:
        raise FeaturelensError(f"{args.resume} was trained with the {run.backend} backend, whose checkpoints only it "
                               f"can continue; drop --backend {args.backend}")
    backend = get_backend(run.backend)
    # the resumed epochs' logs go beside the first part's (<run>-logs), whose files a logger would replace:
    # <run>-from-0007-logs when resuming from epoch 7's checkpoint
    after = (run.current or "checkpoint-0000").removeprefix("checkpoint-")
    log_dir = cli_logs.log_dir(args, Path(args.resume).with_name(f"{Path(args.resume).resolve().name}-from-{after}"))
    devices = cli_run.devices_for(args, run)
    launched = cli_run.launch(backend, devices, args.argv)
    if launched is not None:
        return cli_run.launched(launched, Path(args.resume))
    per_class = run.info.get("train_per_class")
    choice = cli_data.resolve(args, run.info.get(cli_data.RECORD_KEY) or {})
    data = cli_data.load(args, choice, per_class if isinstance(per_class, int) else None)
    _say(f"Resuming {run.describe()}: {run.spec.name} on {len(data.train_labels):,} images of "
         f"{cli_data.describe(data)} with the {backend.name} backend{_on(devices)}")
    model = resume(args.resume, data.train_images, data.train_labels, backend=backend,
                   progress=not args.no_progress, loggers=args.log or (), log_dir=log_dir)
    return _trained(model, Path(args.resume), data, args, log_dir)


def _trained(model: Model, out: Path, data: Dataset, args: argparse.Namespace, log_dir: Path | None) -> int:
    """The end of ``train``: say how it went, evaluate on the test set (main process only)."""
    assert model.history is not None  # train() always sets it
    if not distributed.is_main_process():
        return 0
    print(model.history.describe())
    if model.history.stop_reason == "interrupted":
        return cli_run.interrupted(out)
    evaluation = model.evaluate(data.test_images, data.test_labels)
    write_evaluation(out, evaluation.to_dict())
    print(evaluation.describe())
    if model.snapshots is not None:
        snaps = model.snapshots
        print(f"Snapshots: epochs {', '.join(map(str, snaps.epochs))} and the final model, {len(snaps.layers)} conv "
              f"layers, {len(snaps.probe)} probe images ({snaps.nbytes / 2**20:.2f} MB, {out / SNAPSHOTS_FILE})")
    print(f"Model folder: {out}")
    if log_dir is not None:
        print(cli_logs.describe(args.log, log_dir))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    model = load_model(args.model_dir)
    data, _ = _load_data(args, model=model)
    evaluation = model.evaluate(data.test_images, data.test_labels, tta=args.tta)
    write_evaluation(args.model_dir, {**evaluation.to_dict(), "tta": args.tta})
    print(json.dumps(evaluation.to_dict(), indent=2) if args.json else evaluation.describe())
    return 0


def _cmd_visualize(args: argparse.Namespace) -> int:
    from featurelens.report import write_report

    model = load_model(args.model_dir)
    data, _ = _load_data(args, model=model)
    out = args.out or args.model_dir / "figures"
    figures = write_report(model, data, out, image_index=args.image_index)
    print(f"Wrote {len(figures)} figures to {out}; open {out / 'index.html'}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    return cli_explain.cmd_explain(args, _load_data)


def _cmd_atlas(args: argparse.Namespace) -> int:
    return cli_atlas.cmd_atlas(args, _load_data)


def _cmd_explore(args: argparse.Namespace) -> int:
    return cli_explore.cmd_explore(args, _load_data)


def _cmd_convert(args: argparse.Namespace) -> int:
    model = load_model(args.model_dir)
    converted = convert_model(model, args.to)
    out = args.out or args.model_dir.with_name(f"{args.model_dir.name}-{converted.backend.name}")
    converted.save(out, overwrite=args.overwrite)
    print(f"Converted {args.model_dir} ({model.backend.name}) to {converted.backend.name}: {out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from featurelens.report import write_comparison

    read_metadata(args.model_b)  # a bad second folder fails before the first is built
    a, b = load_model(args.model_a), load_model(args.model_b)
    check_comparable(a, b, (str(args.model_a), str(args.model_b)))
    labels = (f"{args.model_a.name} ({a.backend.name})", f"{args.model_b.name} ({b.backend.name})")
    data, _ = _load_data(args, model=a)
    figures = write_comparison(a, b, data, args.out, labels, image_index=args.image_index)
    sample = data.test_images[:64]
    differences = feature_map_differences(a, b, sample)
    width = max(len("layer"), *(len(d.layer) for d in differences))
    print(f"Feature maps of {len(sample)} test images, layer by layer (relative difference: 0 for identical maps; "
          "linear CKA: 1 for the same representation):")
    print(f"  {'layer':<{width}}  {'rel. difference':>15}  {'linear CKA':>10}")
    for d in differences:
        cka = "n/a" if d.cka is None else f"{d.cka:.4f}"
        print(f"  {d.layer:<{width}}  {d.relative_difference:>15.3g}  {cka:>10}")
    worst = max(differences, key=lambda d: d.relative_difference)
    print(f"Largest relative feature-map difference: {worst.relative_difference:.3g} at {worst.layer}")
    print(f"Wrote {len(figures)} figures to {args.out}; open {args.out / 'index.html'}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    per_class = args.train_per_class or (None if args.full else DEMO_TRAIN_PER_CLASS)
    epochs = args.epochs or (100 if args.full else DEMO_EPOCHS)
    # Snapshots (about 1 MB each for the seed CNN) for the report's "how the filters formed".
    config = TrainConfig(epochs=epochs, device=args.device or "auto", augment=args.full,
                         snapshot_every=max(1, epochs // 10))
    backend = get_backend(args.backend)
    data, choice = _load_data(args, per_class)
    spec = get_preset("seed", data.input_shape, len(data.class_names))
    print(f"{cli_data.describe(data)} from {data.source}: training on {len(data.train_labels):,} images "
          f"({'all' if per_class is None else per_class} per class), testing on {len(data.test_labels):,}")
    print(f"Model: {spec.name}, {spec.parameter_count():,} parameters; backend {backend.name}; "
          f"up to {config.effective_epochs()} epochs with early stopping and LR reduction")
    model = train(spec, data.train_images, data.train_labels, config, backend=backend,
                  class_names=data.class_names, progress=not args.no_progress)
    assert model.history is not None  # train() always sets it
    print(model.history.describe())
    model.train_config = {**(model.train_config or {}), cli_data.RECORD_KEY: choice.record()}
    args.out.mkdir(parents=True, exist_ok=True)
    model_dir = model.save(args.out / "model", overwrite=True)
    evaluation = model.evaluate(data.test_images, data.test_labels)
    write_evaluation(model_dir, evaluation.to_dict())
    print(evaluation.describe())
    from featurelens.report import write_report

    figures_dir = args.out / "figures"
    figures = write_report(model, data, figures_dir)
    print(f"\nDone in {time.perf_counter() - started:.0f} s. Outputs:")
    print(f"  model folder   {model_dir}  (featurelens.json, weights.safetensors)")
    print(f"  history        {model_dir / 'history.json'}")
    print(f"  evaluation     {model_dir / 'evaluation.json'}")
    print(f"  figures        {figures_dir / 'index.html'}  ({len(figures)} figures: samples, history, "
          "filters and how they formed, feature maps, what each channel detects, predictions, confusion "
          "matrix, mistakes, where the model looks, mistakes explained)")
    if not args.full:
        print("This was the CPU-sized demo; `featurelens demo --full` runs the whole recipe.")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    checks = accept_folder(args.model_dir) if args.accept else verify_folder(args.model_dir)
    for check in checks:
        print(check.line())
    if args.accept:
        print(f"Recorded the hashes of {args.model_dir}: it loads as it is now")
        return 0
    bad = [c for c in checks if not c.intact]
    if not bad:
        print(f"{args.model_dir} is intact")
        return 0
    usable = all(c.usable for c in bad if c.file != EVALUATION_FILE)
    print(f"{len(bad)} part(s) of {args.model_dir} are not as saved"
          + (f"; if that is on purpose, `featurelens verify --accept {args.model_dir}` records them" if usable
             else "; repair or delete the damaged ones (the model's weights and featurelens.json are needed)"))
    return 1


def _cmd_check_backend(args: argparse.Namespace) -> int:
    if args.list:
        for check in testing.CHECKS:
            needs = f" [{check.capability.value}]" if check.capability else ""
            print(f"{check.name:<32} {check.description}{needs}")
        return 0
    if args.backend not in registry.backends:  # a typo is a bad argument; a backend that fails to load, a finding
        raise BackendError(registry.explain(f"unknown backend {args.backend!r}"))
    results = testing.check_backend(args.backend, only=args.only, cross_backend=not args.no_cross_backend,
                                    on_result=lambda r: print(r.line(), flush=True))
    print(testing.summary(results))
    return 1 if any(r.failed for r in results) else 0


COMMANDS = {"backends": _cmd_backends, "datasets": _cmd_datasets, "loggers": cli_logs.cmd_loggers,
            "check-backend": _cmd_check_backend,
            "spec": _cmd_spec, "train": _cmd_train,
            "evaluate": _cmd_evaluate, "visualize": _cmd_visualize, "explain": _cmd_explain, "atlas": _cmd_atlas,
            "explore": _cmd_explore, "convert": _cmd_convert, "verify": _cmd_verify,
            "compare": _cmd_compare, "demo": _cmd_demo}


def _process() -> str:
    """Which process speaks, in a data-parallel run's other processes."""
    return "" if distributed.is_main_process() else f" (process {distributed.process_rank()})"


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line, for the processes --devices launches

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:  # a warning is one line too, not a source excerpt
        print(f"featurelens {args.command}{_process()}: warning: {_one_line(str(message))}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FeaturelensError, OSError, MemoryError) as exc:  # bad input, a file system's refusal, too big
        what = str(exc) if isinstance(exc, FeaturelensError) else f"{type(exc).__name__}: {exc}"
        print(f"featurelens {args.command}{_process()}: error: {_one_line(what)}", file=sys.stderr)
        if args.traceback:
            raise
        return 2
    except Exception as exc:  # a bug: still one line, and how to report it
        print(f"featurelens {args.command}: internal error: {type(exc).__name__}: {_one_line(str(exc))} (this is a "
              "bug in featurelens or a plugin; rerun with --traceback and report it)", file=sys.stderr)
        if args.traceback:
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
