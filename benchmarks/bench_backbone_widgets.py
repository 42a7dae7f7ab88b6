"""Latency of lesson 01's explorers per slider move, next to a naive ``interact`` + matplotlib redraw.

The naive version is what one would write first::

    @interact(channel=(0, 31))
    def show(channel):
        feats = backbone(x)                      # the network runs on every move
        plt.imshow(photo); plt.imshow(feats[stage][0, channel], alpha=0.5); plt.show()

Here its figure is rendered to PNG bytes (what the browser receives), so both
sides do the complete work of one update.  The explorer runs the network once
per image and redraws the same view from its cache with PIL.

Run:  .venv/bin/python benchmarks/bench_backbone_widgets.py [--moves 60]
Target: median <= 30 ms per move and >= 5x faster than naive.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

import ipywidgets as W
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import course_lib as cl  # noqa: E402
from course_lib.widgets import FeatureExplorer, ReceptiveFieldExplorer  # noqa: E402


def stats(ts: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1e3 for t in ts)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def time_moves(slider: W.Widget, values: list, before=None) -> list[float]:
    out = []
    for v in values:
        if before is not None:
            before()
        t = time.perf_counter()
        slider.value = v
        out.append(time.perf_counter() - t)
    return out


def naive_explorer(backbone: torch.nn.Module, image: torch.Tensor, stage: str) -> W.IntSlider:
    """``interactive`` + matplotlib: re-run the network and redraw a new figure on each move."""
    photo = image.permute(1, 2, 0).numpy()
    h, w = photo.shape[:2]

    def show(channel: int) -> bytes:
        with torch.no_grad():
            feats = backbone(image[None])
        fig, ax = plt.subplots(figsize=(4.48, 4.48 * h / w), dpi=100)
        ax.imshow(photo)
        ax.imshow(feats[stage][0, channel].numpy(), cmap=cl.render.HEAT, alpha=0.55, extent=(0, w, h, 0),
                  interpolation="bilinear")
        ax.axis("off")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return buf.getvalue()

    widget = W.interactive(show, channel=W.IntSlider(min=0, max=31, value=0))
    return widget.children[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moves", type=int, default=60, help="slider moves per measurement (>= 50)")
    args = parser.parse_args()
    n = max(50, args.moves)
    torch.manual_seed(0)
    backbone = cl.backbones.build("mobilenet_v2", pretrained=True).eval()
    image = cl.load_image(cl.sample_images()["chelsea"], max_side=320)
    print(f"torch threads: {torch.get_num_threads()}, image {tuple(image.shape)}, {n} moves each\n")

    rows = []
    ex = FeatureExplorer(backbone, image)
    ex.stage.value = "C3"
    channel_moves = [(i * 7) % 32 for i in range(1, n + 1)]
    ex_ts = time_moves(ex.channel, channel_moves)
    assert ex.n_forward == 1
    rows.append(("feature explorer: channel (overlay)", ex_ts))

    ex.mode.value = "top-k"
    rows.append(("feature explorer: top-k (overlay grid)", time_moves(ex.top_k, [1 + (i * 5) % 16 for i in range(n)])))

    naive = naive_explorer(backbone, image, "C3")
    with contextlib.redirect_stdout(io.StringIO()):  # interactive's output area prints control codes here
        naive_ts = time_moves(naive, channel_moves)
    rows.append(("naive interact + matplotlib: channel", naive_ts))

    rf = ReceptiveFieldExplorer(backbone, image)
    rf.show_erf.value = False
    rows.append(("RF explorer: box only", time_moves(rf.x, [(i * 3) % (rf.x.max + 1) for i in range(n)])))
    rf.show_erf.value = True
    for v in range(rf.x.max + 1):  # visit every cell of the row once: one backward pass each
        rf.x.value = v
    rf_vals = [(i * 5) % (rf.x.max + 1) for i in range(n)]
    rows.append(("RF explorer: box + gradient, cell seen before", time_moves(rf.x, rf_vals)))
    fresh = ReceptiveFieldExplorer(backbone, image)
    k = min(12, fresh.x.max)
    rows.append((f"RF explorer: new cell, one backward pass ({k} moves)",
                 time_moves(fresh.x, [(fresh.x.value + 1 + i) % (fresh.x.max + 1) for i in range(k)])))

    width = max(len(r[0]) for r in rows)
    print(f"{'view':<{width}}  {'median ms':>9}  {'p95 ms':>7}")
    for name, ts in rows:
        med, p95 = stats(ts)
        print(f"{name:<{width}}  {med:9.1f}  {p95:7.1f}")
    med_ex, _ = stats(ex_ts)
    med_naive, _ = stats(naive_ts)
    ratio = med_naive / med_ex
    print(f"\nexplorer vs naive (same view, channel moves): {ratio:.1f}x faster")
    print(f"target: median <= 30 ms -> {'met' if med_ex <= 30 else 'NOT met'}; "
          f">= 5x faster -> {'met' if ratio >= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
