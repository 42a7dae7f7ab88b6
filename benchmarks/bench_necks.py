"""The neck lessons' timings: SPP vs SPPF (lesson 05), and the fusion explorer's update latency (lesson 04).

Run: ``.venv/bin/python benchmarks/bench_necks.py [--moves 60] [--repeats 30]``

1. SPP (parallel 5/9/13 max-pools) vs SPPF (one 5x5 pool chained three times),
   same weights, same output: the pooling part alone and the whole block, on
   YOLOv8-like map sizes.
2. The fusion explorer: median and p95 latency of control moves that redraw
   from cached tensors, vs a naive ``ipywidgets.interactive`` callback that
   runs the backbone and the neck and redraws a matplotlib figure each time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import ipywidgets as W  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import course_lib as cl  # noqa: E402
from course_lib.blocks import SPP, SPPF  # noqa: E402
from course_lib.data import shapes_scene  # noqa: E402
from course_lib.widgets import FusionExplorer  # noqa: E402


def timed(fn, repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


@torch.no_grad()
def bench_spp(repeats: int) -> None:
    print("\n== SPP (5, 9, 13 in parallel) vs SPPF (5 chained 3x), CPU, batch 1, "
          f"{torch.get_num_threads()} threads; median ms over {repeats} runs ==")
    print(f"{'map':>16} | {'pools SPP':>9} {'pools SPPF':>10} {'x':>5} | {'block SPP':>9} {'block SPPF':>10} {'x':>5}"
          " | equal")
    pools = [nn.MaxPool2d(k, 1, k // 2) for k in (5, 9, 13)]
    p5 = pools[0]

    def spp_pools(x):
        return [p(x) for p in pools]

    def sppf_pools(x):
        a = p5(x)
        b = p5(a)
        return [a, b, p5(b)]

    for c, s in [(128, 20), (128, 40), (64, 80), (256, 20)]:
        x = torch.randn(1, c, s, s)
        spp, sppf = SPP(2 * c, 2 * c).eval(), SPPF(2 * c, 2 * c).eval()
        sppf.load_state_dict(spp.state_dict())
        x2 = torch.randn(1, 2 * c, s, s)
        equal = torch.equal(spp(x2), sppf(x2))
        t1 = statistics.median(timed(lambda x=x: spp_pools(x), repeats))
        t2 = statistics.median(timed(lambda x=x: sppf_pools(x), repeats))
        t3 = statistics.median(timed(lambda x2=x2, spp=spp: spp(x2), repeats))
        t4 = statistics.median(timed(lambda x2=x2, sppf=sppf: sppf(x2), repeats))
        print(f"{f'{c}ch {s}x{s}':>16} | {t1:9.3f} {t2:10.3f} {t1 / t2:5.2f} | {t3:9.3f} {t4:10.3f} {t3 / t4:5.2f}"
              f" | {equal}")


def naive_explorer(images: dict, backbone: nn.Module, necks: dict) -> tuple[W.interactive, list[float]]:
    """What a first version of the explorer looks like: everything recomputed and redrawn per move."""
    times: list[float] = []
    tensors = {k: cl.load_image(v, max_side=320) for k, v in images.items()}

    def view(image: str, neck: str, lateral: bool, top_down: bool, bottom_up: bool, level: str, reduce: str,
             channel: int) -> None:
        t = time.perf_counter()
        m = necks[neck]
        m.set_paths(**{k: v for k, v in dict(lateral=lateral, top_down=top_down, bottom_up=bottom_up).items()
                       if k in m.paths})
        with torch.no_grad():
            feats = backbone(tensors[image][None])
            out = m(feats)
        c_name = m.in_keys[m.out_keys.index(level)]
        pick = (lambda t: t[0].mean(0)) if reduce == "mean" else (lambda t: t[0, channel % t.shape[1]])
        fig, axes = plt.subplots(1, 3, figsize=(9, 2.6))
        axes[0].imshow(tensors[image].permute(1, 2, 0).numpy())
        axes[1].imshow(pick(feats[c_name]).numpy())
        axes[2].imshow(pick(out[level]).numpy())
        for ax in axes:
            ax.axis("off")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        times.append((time.perf_counter() - t) * 1e3)

    w = W.interactive(view, image=list(images), neck=list(necks), lateral=True, top_down=True, bottom_up=True,
                      level=["P3", "P4", "P5"], reduce=["mean", "channel"], channel=(0, 63))
    return w, times


def moves(n: int) -> list[tuple[str, object]]:
    """A learner's session: level / view / channel changes, a path switch every 6th move; every move changes a value."""
    state = {"level": "P3", "reduce": "mean", "channel": 0, "top_down": True}
    options = {"level": ["P3", "P4", "P5"], "reduce": ["mean", "channel"], "channel": [3, 17, 40, 9, 0],
               "top_down": [True, False]}
    order = ["level", "reduce", "channel", "level", "channel", "top_down"]
    seq: list[tuple[str, object]] = []
    for i in range(n):
        name = order[i % len(order)]
        opts = options[name]
        value = opts[(opts.index(state[name]) + 1) % len(opts)] if state[name] in opts else opts[0]
        state[name] = value
        seq.append((name, value))
    return seq


def bench_explorer(n_moves: int) -> None:
    images = {"cat": cl.sample_images()["chelsea"], "shapes": shapes_scene()[0]}
    backbone = cl.backbones.build("mobilenet_v2", pretrained=True).eval()
    fx = FusionExplorer(backbone, images, out_channels=64, max_side=320)
    seq = moves(n_moves)

    fast: list[float] = []
    for name, value in seq:
        t = time.perf_counter()
        getattr(fx, name).value = value
        fast.append((time.perf_counter() - t) * 1e3)
    toggles = [t for (name, _), t in zip(seq, fast) if name == "top_down"]

    with contextlib.redirect_stdout(io.StringIO()):  # interactive clears its output area on every call
        naive, times = naive_explorer(images, backbone, fx.necks)
        controls = {c.description: c for c in naive.children if hasattr(c, "description")}
        times.clear()
        for name, value in seq:
            controls[name].value = value
    slow = times
    assert len(slow) == len(seq), "every move must trigger one redraw"

    print(f"\n== Fusion explorer, {len(seq)} control moves (level / view / channel, a path switch every 6th), "
          f"CPU {torch.get_num_threads()} threads ==")
    print(f"{'':34} {'median ms':>10} {'p95 ms':>8}")
    print(f"{'explorer (cached tensors, PIL)':34} {statistics.median(fast):10.1f} {p95(fast):8.1f}")
    print(f"{'  of which path switches':34} {statistics.median(toggles):10.1f} {p95(toggles):8.1f}")
    print(f"{'naive interact + matplotlib + fwd':34} {statistics.median(slow):10.1f} {p95(slow):8.1f}")
    print(f"speed-up (median): {statistics.median(slow) / statistics.median(fast):.1f}x;  "
          f"backbone passes: explorer {fx.n_forward}, naive {len(slow)};  neck passes: explorer {fx.n_neck_forward}")
    ok = statistics.median(fast) <= 30 and statistics.median(slow) / statistics.median(fast) >= 5
    print(f"target (median <= 30 ms and >= 5x faster): {'met' if ok else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bench_spp(args.repeats)
    bench_explorer(args.moves)


if __name__ == "__main__":
    main()
