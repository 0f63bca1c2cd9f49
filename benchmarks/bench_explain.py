"""Attribution speed, measured side by side in one run (issue 10).

1. Grad-CAM for 1,000 CIFAR-10 test images (seeded random images without the data), batches of 64,
   on the seed CNN: ``featurelens.explain.gradcam`` (images as loaded, default layer, default
   targets = predicted classes) vs pytorch-grad-cam's ``GradCAM`` on the same net, layer and
   images (the images normalized and made a tensor inside the timed call, batch by batch; its
   targets None = predicted classes). Also with the targets given to both sides. Alternating runs
   after an untimed warm-up, median of ``--repeats``; ratio = featurelens speed / peer speed
   (target >= 1.0).
2. Each featurelens method with its default settings on ``--method-images`` images, as a multiple
   of one bare forward pass (``net(x)`` under ``no_grad``) over the same images.
3. ``--profile``: where featurelens's Grad-CAM time goes (cProfile, top functions by own time).

pytorch-grad-cam is imported through check_explain_peers.import_gradcam (stub modules for
torchvision / scikit-learn, which its import needs and its GradCAM path does not use).

    python benchmarks/bench_explain.py --profile --out benchmarks/results/explain-cpu.json
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import subprocess

import numpy as np
import torch
from _common import machine_info, report
from bench_introspect import alternate, timed
from check_explain_peers import Logits, import_gradcam, setup, stubbed_names_used, to_input

from featurelens import explain


def load() -> dict:
    """1, 5 and 15 minute load averages, and the busiest other processes (the CPU may be shared)."""
    one, five, fifteen = os.getloadavg()
    try:
        top = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()[1:6]
    except (OSError, subprocess.SubprocessError):
        top = []
    return {"loadavg_1_5_15": [round(one, 2), round(five, 2), round(fifteen, 2)],
            "busiest_processes_pcpu_comm": [line.strip() for line in top]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--method-images", type=int, default=64)
    p.add_argument("--method-repeats", type=int, default=3)
    p.add_argument("--train-images", type=int, default=5000, help="0: seeded random weights instead")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--out")
    args = p.parse_args()

    before = load()
    model, images, about = setup(args.images, args.train_images, args.epochs)
    net = model.native.eval()
    layer_name = explain.default_cam_layer(model.layers())
    result: dict = {**about, "images_count": len(images), "batch": args.batch, "layer": layer_name,
                    "repeats": args.repeats, "load_before": before}

    # 1. Grad-CAM vs pytorch-grad-cam
    pgc, shims = import_gradcam()
    if pgc is None:
        print(f"SKIP the pytorch-grad-cam comparison: {shims['skipped']}")
        result["gradcam_vs_pytorch_grad_cam"] = shims
    else:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        layer = dict(net.named_modules())[layer_name]
        peer = pgc.GradCAM(model=Logits(net).eval(), target_layers=[layer])
        targets = model.predict(images).argmax(axis=1)

        def ours(given: bool) -> None:
            explain.gradcam(model, images, targets if given else None, layer=layer_name, batch_size=args.batch)

        def theirs(given: bool) -> None:
            for start in range(0, len(images), args.batch):
                x = to_input(model, images[start:start + args.batch])
                wanted = [ClassifierOutputTarget(int(c)) for c in targets[start:start + args.batch]] if given else None
                peer(input_tensor=x, targets=wanted)

        rows = {}
        for given in (False, True):
            t_ours, t_peer = alternate(lambda g=given: ours(g), lambda g=given: theirs(g), args.repeats)
            row = {"featurelens_s": statistics.median(t_ours), "pytorch_grad_cam_s": statistics.median(t_peer),
                   "featurelens_runs_s": t_ours, "pytorch_grad_cam_runs_s": t_peer}
            row["featurelens_images_per_s"] = len(images) / row["featurelens_s"]
            row["pytorch_grad_cam_images_per_s"] = len(images) / row["pytorch_grad_cam_s"]
            row["ratio_featurelens_speed_over_peer"] = row["pytorch_grad_cam_s"] / row["featurelens_s"]
            rows["targets_given" if given else "default_targets_predicted"] = row
        peer.activations_and_grads.release()
        net.zero_grad(set_to_none=True)
        shims["stubbed_names_looked_up"] = stubbed_names_used()
        result["gradcam_vs_pytorch_grad_cam"] = {"imports": shims, **rows}

    # 2. each method vs one forward pass
    few = images[:args.method_images]
    x = to_input(model, few)

    def forward() -> None:
        with torch.no_grad():
            net(x)

    forward()
    t_forward = statistics.median(timed(forward, 2 * args.method_repeats + 1))
    t_predict = statistics.median(timed(lambda: model.predict(few), args.method_repeats))
    costs = {"images": len(few), "bare_forward_s": t_forward, "model_predict_s": t_predict,
             "model_predict_x_forward": t_predict / t_forward, "methods": {}}
    for name, fn in explain.METHODS.items():
        fn(model, few[:2])  # warm-up
        t = statistics.median(timed(lambda fn=fn: fn(model, few), args.method_repeats))
        costs["methods"][name] = {"seconds": t, "x_forward": t / t_forward}
        print(f"{name}: {t:.3f} s = {t / t_forward:.1f} forward passes")
    result["method_costs_default_settings"] = costs

    # 3. where featurelens's Grad-CAM time goes
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        explain.gradcam(model, images, layer=layer_name, batch_size=args.batch)
        profiler.disable()
        for key, order, restrict in (("gradcam_profile_top_by_own_time", "tottime", ()),
                                     ("gradcam_profile_featurelens_by_cumulative_time", "cumulative",
                                      ("featurelens",))):
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats(order).print_stats(*restrict, 16)
            result[key] = [line.rstrip() for line in stream.getvalue().splitlines() if line.strip()][-18:]

    result["load_after"] = load()
    result["machine"] = machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                                     numpy=np.__version__)
    report(result, args.out)


if __name__ == "__main__":
    main()
