"""Execute every lesson and render a static HTML site (nbconvert) into ``_site/``.

    .venv/bin/python tools/build_site.py                 # all notebooks -> _site/
    .venv/bin/python tools/build_site.py --out /tmp/site notebooks/00_the_big_picture.ipynb

Each notebook runs top to bottom in a fresh kernel (in memory: ``notebooks/``
is never written to).  Live ipywidgets cannot run in a static page, so every
widget output is replaced by a short note followed by the explorer's *static
figure*: every course explorer puts a PNG of ``static_figure()`` into its own
display output, next to the widget (``course_lib.widgets.base.Panel``).  A
progress bar (tqdm's widget) becomes a line of text; any other widget
output without its figure is a problem: a lesson must read well without a
kernel.  Every picture must carry alt text (what it shows, in words:
``render.describe(fig, "...")``), and every matplotlib figure is checked against
the course's figure rules when it is shown (``course_lib.render.figure_problems``:
no text under 9 pt, no jet or rainbow, a colour bar or a shared scale on every map).
The build fails on a cell error, on a widget without its static figure, on a
picture without alt text or breaking a rule, or on a notebook that does not finish
within ``--timeout`` seconds per cell.  ``_site/index.html`` lists the lessons with
their titles and build times; ``_site/figures/`` holds every picture the lessons
show, with ``index.html`` to review them all in one sitting (``make figures``).
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

ROOT = Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
STATIC_MIME = ("image/png", "image/jpeg", "image/svg+xml")
#: what tqdm's notebook progress bar says as text: "train: 100%|##########| 30/30 [00:01<00:00, ...]"
PROGRESS_TEXT = re.compile(r"\|\s*\d+/\d+ \[")
IMG_ALT = re.compile(r'<img\b[^>]*\balt="([^"]*)"')
PROGRESS_NOTE = "[progress bar: it moves while the cell runs in JupyterLab]"
LIVE_NOTE = (
    '<div class="course-live-note" style="border-left:4px solid #1976d2;padding:4px 10px;color:#555;'
    'background:#f3f7fd;font-size:90%">&#9881; Live explorer: open this notebook in JupyterLab to move its '
    "controls. The static figure below shows what it draws.</div>"
)


@dataclass
class Page:
    """One rendered lesson."""

    notebook: Path
    html: Path
    title: str
    seconds: float
    explorers: int = 0
    static_figures: int = 0
    problems: list[str] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)


def title_of(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return "untitled"


def _static_outputs(cell) -> int:
    """How many outputs of ``cell`` are pictures (PNG, JPEG, SVG)."""
    return sum(
        out.get("output_type") in ("display_data", "execute_result") and any(m in out.get("data", {}) for m in STATIC_MIME)
        for out in cell.get("outputs", [])
    )


def replace_widgets(nb) -> tuple[int, int, list[str]]:
    """Swap every live widget output for a note followed by its own static figure.

    A widget output that carries no static figure (an image next to the
    widget view in the same output) is a problem, unless it is a progress bar,
    which becomes its text.  Returns (number of widget
    outputs, number of static figures in the page, problems).
    """
    code = [c for c in nb.cells if c.cell_type == "code"]
    explorers, problems = 0, []
    for i, cell in enumerate(code):
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                outputs.append(out)
                continue
            text = data.get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if PROGRESS_TEXT.search(text) and not any(m in data for m in STATIC_MIME):
                out["data"] = {"text/plain": PROGRESS_NOTE}  # it moved while the cell ran; nothing to show
                outputs.append(out)
                continue
            explorers += 1
            static = {m: data[m] for m in STATIC_MIME if m in data}
            out["data"] = {"text/html": LIVE_NOTE, "text/plain": "[live explorer: open in JupyterLab]"}
            outputs.append(out)
            if static:
                meta = dict(out.get("metadata", {}))
                alt = meta.get("image/png", {}).get("alt")
                extra = {"text/html": picture_html(static, alt)} if alt else {}
                outputs.append(nbformat.v4.new_output("display_data", metadata=meta,
                                                      data={**static, **extra, "text/plain": "[static figure]"}))
            else:
                first = "".join(cell.source).splitlines()[:1]
                problems.append(f"code cell {i} ({first[0] if first else ''!r}) shows an explorer without its "
                                "static figure")
        cell["outputs"] = outputs
    nb.metadata.pop("widgets", None)  # no widget state: nothing tries to load a widget manager
    statics = sum(_static_outputs(c) for c in code)
    return explorers, statics, problems


def picture_html(static: dict, alt: str) -> str:
    """An ``<img>`` of the first picture in ``static`` (mime type -> base64) with its alt text."""
    from course_lib.render import img_html

    mime = next(m for m in STATIC_MIME if m in static)
    src = static[mime] if mime != "image/svg+xml" else base64.b64encode(static[mime].encode()).decode()
    return img_html(src, alt, mime)


@dataclass
class Picture:
    """One picture a lesson shows: where it is, its words, and what breaks the figure rules."""

    cell: int
    index: int
    mime: str
    data: bytes
    alt: str | None
    problems: list[str]


def _alt_of(out) -> str | None:
    alt = next((m.get("alt") for m in out.get("metadata", {}).values() if isinstance(m, dict) and m.get("alt")), None)
    if alt is None:
        page = out.get("data", {}).get("text/html", "")
        found = IMG_ALT.search("".join(page) if isinstance(page, list) else page)
        alt = html.unescape(found.group(1)) if found and found.group(1).strip() else None
    return alt


def pictures_of(nb) -> tuple[list[Picture], list[str]]:
    """Every picture in the executed notebook, and the problems: a picture without alt text, or one that
    breaks a figure rule (:func:`course_lib.render.figure_problems`, recorded when the figure was shown)."""
    pictures, problems = [], []
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        first = "".join(cell.source).splitlines()[:1]
        where = f"code cell {i} ({first[0] if first else ''!r})"
        k = 0
        first_shown: dict[bytes, int] = {}  # in this cell (two cells may well show the same photo)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            mime = next((m for m in STATIC_MIME if m in data), None)
            if out.get("output_type") not in ("display_data", "execute_result") or mime is None:
                continue
            raw = data[mime]
            raw = "".join(raw) if isinstance(raw, list) else raw
            blob = raw.encode() if mime == "image/svg+xml" else base64.b64decode(raw)
            rules = [p for m in out.get("metadata", {}).values() if isinstance(m, dict)
                     for p in m.get("course_problems", [])]
            alt = _alt_of(out)
            pictures.append(Picture(i, k, mime, blob, alt, rules))
            if not alt:
                problems.append(f"{where} shows picture {k} without alt text: render.describe(fig, 'what it shows')")
            problems += [f"{where}, picture {k}: {p}" for p in rules]
            if blob in first_shown:  # e.g. a cell ending in `render.describe(fig, ...)`: the figure, returned, again
                problems.append(f"{where} shows picture {k} again (as picture {first_shown[blob]}): end the line "
                                "with ';' or close the figure")
            first_shown.setdefault(blob, k)
            k += 1
    return pictures, problems


def write_figures(pages: list[Page], out_dir: Path) -> Path:
    """Every lesson's pictures in one folder, with an index page (alt text and problems under each) for review."""
    folder = out_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for page in pages:
        rows.append(f"<h2>{html.escape(page.notebook.stem)} · {html.escape(page.title)}</h2>")
        for pic in page.pictures:
            ext = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}[pic.mime]
            name = f"{page.notebook.stem.split('_')[0]}_cell{pic.cell:02d}_{pic.index}.{ext}"
            (folder / name).write_bytes(pic.data)
            notes = "".join(f"<li class='bad'>{html.escape(p)}</li>" for p in pic.problems)
            alt = html.escape(pic.alt or "NO ALT TEXT")
            rows.append(f"<figure><img src='{name}' alt='{alt}' loading='lazy'><figcaption><b>{name}</b>: {alt}"
                        f"<ul>{notes}</ul></figcaption></figure>")
    index = folder / "index.html"
    index.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Every figure of the course</title><style>"
        "body{font-family:sans-serif;margin:1em 2em}figure{margin:1em 0 2em;border-top:1px solid #ccc}"
        "img{max-width:900px;display:block}.bad{color:#b00}</style></head><body><h1>Every figure of the course</h1>"
        "<p>What each lesson shows, in order, with its alt text; rule problems in red.</p>\n"
        + "\n".join(rows) + "\n</body></html>\n", encoding="utf-8")
    return index


def errors_of(nb) -> list[str]:
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                out.append(f"cell {i}: {o.get('ename')}: {o.get('evalue')}")
    return out


def build_page(path: Path, out_dir: Path, timeout: int = 600) -> Page:
    """Execute ``path`` in memory and write ``out_dir/<stem>.html``."""
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    ep = ExecutePreprocessor(timeout=timeout, kernel_name="python3", store_widget_state=False)
    problems: list[str] = []
    # Figures must land in the page as they do in JupyterLab: the kernel uses the inline backend even when
    # the caller (pytest sets MPLBACKEND=Agg) asked for another one.
    saved = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        ep.preprocess(nb, {"metadata": {"path": str(path.parent)}})
    except CellExecutionError as err:
        problems.append(f"execution failed: {str(err).strip().splitlines()[-1] if str(err).strip() else err!r}")
    finally:
        if saved is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = saved
    seconds = time.perf_counter() - t0
    problems += errors_of(nb)
    explorers, statics, widget_problems = replace_widgets(nb)
    problems += widget_problems
    pictures, picture_problems = pictures_of(nb)
    problems += picture_problems
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title_of(nb)}})
    target = out_dir / f"{path.stem}.html"
    target.write_text(body, encoding="utf-8")
    return Page(path, target, title_of(nb), seconds, explorers, statics, problems, pictures)


def write_index(pages: list[Page], out_dir: Path) -> Path:
    rows = "\n".join(
        f'<li><a href="{html.escape(p.html.name)}">{html.escape(p.notebook.stem.split("_")[0])} · '
        f"{html.escape(p.title)}</a> <small>({p.explorers} explorer(s), {p.static_figures} figure(s), "
        f"built in {p.seconds:.0f} s{'; PROBLEMS' if p.problems else ''})</small></li>"
        for p in pages
    )
    index = out_dir / "index.html"
    index.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Eye · Brain · Judgement</title>"
        "<style>body{font-family:sans-serif;max-width:760px;margin:2em auto;line-height:1.5}</style></head><body>"
        "<h1>Eye · Brain · Judgement</h1><p>Backbone (主干网络) → neck (颈部) → head (头部) of deep vision models. "
        "Each lesson below was executed top to bottom to make this page; open the notebooks in JupyterLab to "
        f"use the live explorers.</p>\n<ol>\n{rows}\n</ol></body></html>\n",
        encoding="utf-8",
    )
    (out_dir / "build.json").write_text(
        json.dumps(
            [
                {"notebook": p.notebook.name, "html": p.html.name, "title": p.title, "seconds": round(p.seconds, 1),
                 "explorers": p.explorers, "static_figures": p.static_figures, "problems": p.problems}
                for p in pages
            ],
            indent=1,
        )
    )
    return index


def build_site(notebooks: list[Path], out_dir: Path, timeout: int = 600) -> list[Page]:
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = []
    for nb in notebooks:
        print(f"executing {nb.name} ...", flush=True)
        page = build_page(nb, out_dir, timeout)
        status = "ok" if not page.problems else "PROBLEMS:\n  " + "\n  ".join(page.problems)
        print(f"  {page.seconds:.1f} s, {page.explorers} explorer(s), {page.static_figures} figure(s): {status}")
        pages.append(page)
    write_index(pages, out_dir)
    print(f"every figure, with its alt text, in {write_figures(pages, out_dir)}")
    return pages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="notebooks to render (default: notebooks/[0-9]*.ipynb)")
    ap.add_argument("--out", type=Path, default=ROOT / "_site", help="output folder (default: _site/)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = ap.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 1
    pages = build_site([p.resolve() for p in notebooks], args.out, args.timeout)
    print(f"site written to {args.out / 'index.html'}")
    return 1 if any(p.problems for p in pages) else 0


if __name__ == "__main__":
    sys.exit(main())
