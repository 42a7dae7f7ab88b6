"""Measure the course on this machine and write ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/run_all.py            # everything (several minutes)
    .venv/bin/python benchmarks/run_all.py --quick    # fewer repeats, notebooks still run once each

What it measures (timings are never asserted in tests; they live here):

1. the machine (CPU, cores, memory, torch version and threads);
2. start-up: ``import course_lib`` and loading the pretrained MobileNetV2 backbone
   (and lesson 00's whole classifier), each in a fresh process, median of a few runs;
3. every notebook's execution time in a fresh kernel (nbclient) and the kernel's peak memory;
4. widget update latency for lesson 00's stage explorer: median / p95 over >= 50 moves
   of each control, next to a naive ``interact`` + matplotlib callback that re-runs the
   network and redraws a figure on every move (the ratio is how many times faster the
   cached redraw is);
5. the lesson benchmarks other scripts in this folder provide (``bench_*.py``: necks, backbone
   widgets, the detector's mAP after its time budget ...), run as they are and quoted verbatim;
6. peak memory of this process and of every process it started.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PY = sys.executable


# ------------------------------------------------------------------------------------------------ helpers
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def clean(text: str) -> str:
    """Drop terminal colour codes / progress-bar redraws and the blank lines they leave."""
    lines = [ANSI.sub("", line).rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(0.95 * (len(xs) - 1))))]


def _mib(kib: float) -> float:
    return kib / 1024.0  # ru_maxrss is in KiB on Linux


def machine() -> dict[str, str]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores available": str(cores),
        "memory": mem,
        "load average at start (1/5/15 min)": load,
        "python": platform.python_version(),
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "os": platform.platform(),
    }


def run_py(code: str, timeout: int = 600) -> dict:
    """Run ``code`` in a fresh Python; it must print one JSON line last."""
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ start-up
STARTUP_CODE = """
import json, time, resource
tb = time.perf_counter()
import torch, torchvision
t0 = time.perf_counter()
import course_lib as cl
t1 = time.perf_counter()
bb = cl.backbones.build("mobilenet_v2", pretrained=True)
t2 = time.perf_counter()
model = cl.build_model({"backbone": {"name": "mobilenet_v2", "pretrained": True}, "neck": {"name": "gap"},
                        "head": {"name": "classification", "pretrained": True}})
t3 = time.perf_counter()
print(json.dumps({"deps": t0 - tb, "import": t1 - t0, "backbone": t2 - t1, "classifier": t3 - t2,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_startup(repeats: int) -> list[tuple[str, str, str]]:
    runs = [run_py(STARTUP_CODE) for _ in range(repeats)]
    rows = []
    for key, label in [("deps", "`import torch, torchvision` (what course_lib builds on)"),
                       ("import", "`import course_lib` after that (its own cost)"),
                       ("backbone", "`cl.backbones.build('mobilenet_v2', pretrained=True)`"),
                       ("classifier", "lesson 00 classifier (`build_model`, backbone + ImageNet head)")]:
        xs = [r[key] * 1e3 for r in runs]
        rows.append((label, f"{statistics.median(xs):.0f} ms", f"{min(xs):.0f} - {max(xs):.0f} ms"))
    rows.append(("peak memory of that process", f"{statistics.median(r['rss_mib'] for r in runs):.0f} MiB", ""))
    return rows


# ------------------------------------------------------------------------------------------------ notebooks
NOTEBOOK_CODE = """
import json, os, resource, sys, time
import nbformat
from nbclient import NotebookClient
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}})
t0 = time.perf_counter()
error = None
try:
    client.execute()
except Exception as err:
    error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
seconds = time.perf_counter() - t0
cells = sum(c.cell_type == "code" for c in nb.cells)
print(json.dumps({"seconds": seconds, "cells": cells, "error": error,
                  "kernel_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def bench_notebooks(paths: list[Path]) -> list[tuple[str, ...]]:
    rows = []
    for path in paths:
        print(f"  notebook {path.name} ...", flush=True)
        out = subprocess.run([PY, "-c", NOTEBOOK_CODE, str(path)], capture_output=True, text=True, timeout=1800,
                             cwd=path.parent)
        if out.returncode != 0:
            rows.append((path.name, "failed", "", "", out.stderr.strip().splitlines()[-1][:120] if out.stderr else ""))
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((path.name, f"{r['seconds']:.1f} s", str(r["cells"]), f"{r['kernel_peak_mib']:.0f} MiB",
                     clean(r["error"] or "ok").replace("|", "/")[:200]))
    return rows


# ------------------------------------------------------------------------------------------------ widgets
def bench_stage_explorer(moves: int) -> list[tuple[str, ...]]:
    """Lesson 00's stage explorer: cached redraw vs a naive interact + matplotlib callback."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import course_lib as cl
    from course_lib.images import imagenet_view

    torch.manual_seed(0)
    model = cl.build_model({"backbone": {"name": "mobilenet_v2", "pretrained": True}, "neck": {"name": "gap"},
                            "head": {"name": "classification", "pretrained": True}}).eval()
    picker = cl.widgets.ImagePicker("chelsea")
    explorer = cl.widgets.StageExplorer(model, picker=picker, prepare=imagenet_view)
    stages = list(explorer.stage.options)
    spatial_maps = {f"{part} · {name}" for part, name, t in explorer.trace.stages() if t.ndim == 4 and part != "input"}
    spatial = [s for s in stages if s in spatial_maps] or stages
    n0 = explorer.n_forward

    def timed(values, control) -> list[float]:
        out = []
        for v in values:
            t = time.perf_counter()
            control.value = v  # the observer redraws synchronously, PNG encoding included
            out.append((time.perf_counter() - t) * 1e3)
        return out

    stage_values = [spatial[i % len(spatial)] for i in range(1, moves + 1)]
    k_values = [1 + (i * 5) % 16 for i in range(1, moves + 1)]
    k_values = [k if k != explorer.top_k.value else (k % 16) + 1 for k in k_values]
    t_stage = timed(stage_values, explorer.stage)
    t_k = timed(k_values, explorer.top_k)
    assert explorer.n_forward == n0, "a control move re-ran the network"

    x = imagenet_view(picker.image)

    def naive(stage: str, k: int) -> None:
        """What a first attempt with @interact does: run the network, draw a new figure, encode it."""
        trace = model.trace(x)
        rows = {f"{part} · {name}": t for part, name, t in trace.stages()}
        t = rows[stage][0]
        idx = t.flatten(1).mean(1).argsort(descending=True)[:k]
        fig, axes = plt.subplots(1, k, figsize=(1.6 * k, 1.8), squeeze=False)
        for ax, c in zip(axes[0], idx.tolist()):
            ax.imshow(t[c].numpy(), cmap="viridis")
            ax.set_title(f"#{c}", fontsize=9)
            ax.axis("off")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72)  # the inline backend sends a PNG per redraw
        plt.close(fig)

    t_naive = []
    for s, k in list(zip(stage_values, k_values))[:50]:  # 50 naive moves are plenty (each takes seconds)
        t = time.perf_counter()
        naive(s, k)
        t_naive.append((time.perf_counter() - t) * 1e3)

    med_naive = statistics.median(t_naive)
    rows = []
    for label, xs in [("stage dropdown", t_stage), ("top-k slider", t_k)]:
        rows.append((f"lesson 00 stage explorer: {label}", str(len(xs)), f"{statistics.median(xs):.1f}",
                     f"{p95(xs):.1f}", f"{med_naive:.0f}", f"{med_naive / statistics.median(xs):.0f}x"))
    rows.append(("naive `interact` + matplotlib (re-runs the network)", str(len(t_naive)), f"{med_naive:.1f}",
                 f"{p95(t_naive):.1f}", "", "1x"))
    return rows


# ------------------------------------------------------------------------------------------------ lesson scripts
def run_lesson_benchmarks(quick: bool, timeout: int) -> list[tuple[str, str, float]]:
    """Run every other ``bench_*.py`` here, as it is, and keep its printed output."""
    out = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"  {script.name} ...", flush=True)
        args = [PY, str(script)]
        if quick and "--quick" in script.read_text():
            args.append("--quick")
        t0 = time.perf_counter()
        try:
            res = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
            text = clean(res.stdout) or "(no output)"
            if res.returncode != 0:
                text += f"\n\n[exited with status {res.returncode}]\n" + res.stderr.strip()[-1500:]
        except subprocess.TimeoutExpired:
            text = f"[stopped after {timeout} s]"
        out.append((script.name, text, time.perf_counter() - t0))
    return out


# ------------------------------------------------------------------------------------------------ report
def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark the course and write benchmarks/RESULTS.md")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (start-up x2, 50 widget moves)")
    ap.add_argument("--moves", type=int, default=None, help="widget moves per control (default 100, quick 50)")
    ap.add_argument("--skip-notebooks", action="store_true", help="do not execute the notebooks")
    ap.add_argument("--skip-scripts", action="store_true", help="do not run the other bench_*.py scripts")
    ap.add_argument("--script-timeout", type=int, default=900, help="seconds allowed per bench_*.py script")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--no-readme", action="store_true",
                    help="do not copy the tables into README.md (between <!-- benchmarks:start/end --> markers)")
    args = ap.parse_args(argv)
    moves = max(50, args.moves or (50 if args.quick else 100))
    t_start, started_at = time.perf_counter(), time.time()

    info = machine()
    print("start-up ...", flush=True)
    startup = bench_startup(2 if args.quick else 5)
    print("widgets ...", flush=True)
    widgets = bench_stage_explorer(moves)
    notebooks = []
    if not args.skip_notebooks:
        print("notebooks ...", flush=True)
        notebooks = bench_notebooks(sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")))
    scripts = [] if args.skip_scripts else run_lesson_benchmarks(args.quick, args.script_timeout)
    children_peak = _mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    self_peak = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    parts = [
        "# Benchmark results",
        "",
        f"Written by `benchmarks/run_all.py{' --quick' if args.quick else ''}` in "
        f"{(time.perf_counter() - t_start) / 60:.1f} min. Timings are wall-clock on the machine below, "
        "which may be shared with other work: compare ratios more than absolute numbers.",
        "",
        "## Machine",
        "",
        table(("", ""), list(info.items())),
        "",
        "## Start-up (fresh process each run)",
        "",
        table(("what", "median", "range"), startup),
        "",
        f"## Widget update latency ({moves} moves per control)",
        "",
        "Time from setting a control's value to the redrawn PNG being ready in the widget (ms). The explorer "
        "redraws from its cached `Model.trace`; the naive baseline is an `interact` callback that runs the network "
        "and draws a new matplotlib figure per move.",
        "",
        table(("widget", "moves", "median ms", "p95 ms", "naive median ms", "speed-up"), widgets),
        "",
    ]
    if notebooks:
        parts += [
            "## Notebooks (fresh kernel each, top to bottom)",
            "",
            table(("notebook", "execution time", "code cells", "kernel peak memory", "result"), notebooks),
            "",
        ]
    detector = ROOT / "course_lib" / "training" / "results" / "detector.json"
    if scripts and detector.is_file() and detector.stat().st_mtime >= started_at:
        from benchmarks.bench_detector import table as detector_table

        saved = json.loads(detector.read_text())
        parts += [
            f"## Detectors after {saved['budget_s']:.0f} s of training (torch {saved['machine']['torch']})",
            "",
            "Each row is a detector built from `course_lib` parts and trained on ShapesWorld for a fixed wall-clock "
            "budget, then evaluated on the 500 val images (lesson 08 shows this table; "
            "`course_lib/training/results/detector.json` holds it with every config).",
            "",
            detector_table(saved["rows"]),
            "",
        ]
    lab = HERE / "lab_latency.json"
    if scripts and lab.is_file() and lab.stat().st_mtime >= started_at:
        from benchmarks.bench_lab_latency import report

        parts += report(json.loads(lab.read_text()))
    for name, text, seconds in scripts:
        parts += [f"## `{name}` ({seconds:.0f} s)", "", "```text", text, "```", ""]
    if not any(n == "bench_detector.py" for n, _, _ in scripts) and not args.skip_scripts:
        parts += ["## Detector", "", "`benchmarks/bench_detector.py` is not present, so no mAP is reported.", ""]
    parts += [
        "## Peak memory",
        "",
        table(("process", "peak resident memory"),
              [("this script (widget benchmark, model loaded)", f"{self_peak:.0f} MiB"),
               ("largest child process (a notebook kernel or a bench script)", f"{children_peak:.0f} MiB")]),
        "",
    ]
    args.out.write_text("\n".join(parts))
    print(f"wrote {args.out}")
    if not args.no_readme:
        summary = parts[: parts.index("## Peak memory")] if "## Peak memory" in parts else parts
        summary = [p for p in summary if not p.startswith("# Benchmark results")]
        # the lesson scripts' verbatim output stays in RESULTS.md; the README gets the tables
        cut = next((i for i, p in enumerate(summary) if p.startswith("## `bench_")), len(summary))
        rel = os.path.relpath(args.out, ROOT)
        if update_readme(ROOT / "README.md", summary[:cut] + [f"Full output: [`{rel}`]({rel})."]):
            print("updated the table in README.md")
    return 0


README_START, README_END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def update_readme(readme: Path, lines: list[str]) -> bool:
    """Replace the text between the README's benchmark markers (if it has them) with ``lines``."""
    if not readme.exists():
        return False
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = "\n".join(line.replace("## ", "#### ", 1) if line.startswith("## ") else line for line in lines)
    readme.write_text(f"{head}{README_START}\n{body.strip()}\n{README_END}{tail}", encoding="utf-8")
    return True


if __name__ == "__main__":
    sys.exit(main())
