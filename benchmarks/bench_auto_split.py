"""Time ``cl.from_torchvision`` (stages found automatically) on every architecture of the test matrix,
and the first render of an explorer on a ViT-B/16.

Random weights (nothing is downloaded); the split probes a 224x224 input (SSD: 320).  The split time is
mostly its one probe forward pass with a hook on every module (best of two runs); PyTorch's one-off kernel
set-up is paid before the clock starts.

Run:  .venv/bin/python benchmarks/bench_auto_split.py [--threads 2]
Targets: split <= 2 s per model; first render of an explorer on ViT-B/16 <= 3 s.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402
import torchvision.models as M  # noqa: E402
from torchvision.models import detection as D  # noqa: E402
from torchvision.models import segmentation as S  # noqa: E402

import course_lib as cl  # noqa: E402
from course_lib.widgets import FeatureExplorer, StageExplorer  # noqa: E402

CLASSIFIERS = ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "vgg11", "densenet121", "mobilenet_v2",
               "mobilenet_v3_small", "efficientnet_b0", "efficientnet_v2_s", "regnet_y_400mf", "convnext_tiny",
               "shufflenet_v2_x0_5", "mnasnet0_5", "squeezenet1_0", "swin_t", "vit_b_16", "maxvit_t"]
DETECTORS = ["fasterrcnn_mobilenet_v3_large_fpn", "retinanet_resnet50_fpn", "fcos_resnet50_fpn", "ssd300_vgg16",
             "ssdlite320_mobilenet_v3_large", "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn"]
SEGMENTERS = ["deeplabv3_mobilenet_v3_large", "fcn_resnet50", "lraspp_mobilenet_v3_large"]
REFUSED = ["googlenet", "inception_v3"]


def build(name: str) -> torch.nn.Module:
    if name in DETECTORS:
        return getattr(D, name)(weights=None, weights_backbone=None).eval()
    if name in SEGMENTERS:
        return getattr(S, name)(weights=None, weights_backbone=None).eval()
    kw = {"init_weights": False} if name in REFUSED else {}
    return getattr(M, name)(weights=None, **kw).eval()


def levels(specs) -> str:
    return " ".join(f"{k} {s.channels}/{s.stride}" if s.stride else f"{k} {s.channels}" for k, s in specs.items())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}, probe 224x224, random weights\n")
    print("| architecture | split (s, best of 2) | backbone levels (channels/stride) | neck | neck levels |")
    print("|---|---|---|---|---|")
    times = {}
    cl.from_torchvision(M.resnet18(weights=None))  # PyTorch's one-off set-up of its CPU kernels, not counted
    for name in CLASSIFIERS + DETECTORS + SEGMENTERS + REFUSED:
        net = build(name)
        try:
            runs = []
            for _ in range(2):  # best of two: the machine may be shared
                t = time.perf_counter()
                model = cl.from_torchvision(net)
                runs.append(time.perf_counter() - t)
        except TypeError as err:
            print(f"| {name} | refused | {str(err).split(':')[1].split('.')[0].strip()} | | |")
            continue
        times[name] = min(runs)
        neck = getattr(model.neck, "name", type(model.neck).__name__)
        print(f"| {name} | {times[name]:.2f} | {levels(model.backbone.out_specs)} | {neck} | "
              f"{levels(model.neck.out_specs)} |")
    worst = max(times, key=times.get)
    print(f"\nsplit: median {sorted(times.values())[len(times) // 2]:.2f} s, slowest {worst} {times[worst]:.2f} s "
          f"(target <= 2 s each: met for {sum(v <= 2 for v in times.values())} of {len(times)})")

    photo = cl.sample_images()["chelsea"]
    vit = cl.from_torchvision(M.vit_b_16(weights=None).eval())
    for name, make, control, value in (
            ("feature explorer", lambda: FeatureExplorer(vit, photo), "channel", 7),
            ("stage explorer", lambda: StageExplorer(vit, photo), "stage", "neck · pooled")):
        t = time.perf_counter()
        ex = make()
        first = time.perf_counter() - t
        t = time.perf_counter()
        getattr(ex, control).value = value
        move = time.perf_counter() - t
        print(f"ViT-B/16 {name}: first render {first:.2f} s (target <= 3 s: {'met' if first <= 3 else 'not met'}), "
              f"one {control} move {move * 1e3:.0f} ms, forward passes {ex.n_forward}")


if __name__ == "__main__":
    main()
