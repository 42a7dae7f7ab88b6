"""Execute every lesson and render a static HTML site (nbconvert) into ``_site/``.

    .venv/bin/python tools/build_site.py                 # every lesson, English and Chinese -> _site/
    .venv/bin/python tools/build_site.py --lang en       # the English lessons only
    .venv/bin/python tools/build_site.py --out /tmp/site notebooks/00_the_big_picture.ipynb

Both languages of the course share one folder: ``00_the_big_picture.html`` and its
Chinese page ``00_the_big_picture.zh.html`` (from ``notebooks/zh/``), ``index.html``
and ``index.zh.html``; every page links its other-language twin from its bar, speaks
its own language (:data:`UI`) and searches the lessons of its language.

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
their titles, build times and page weights; ``_site/figures/`` holds every picture the lessons
show, with ``index.html`` to review them all in one sitting (``make figures``).

The site works offline, opened straight from disk (``file://``): the pages use the
``course`` template (``tools/site/templates/``: JupyterLab's look without require.js,
a widget manager or mermaid from a CDN), math is drawn by the vendored KaTeX
(``tools/site/assets/katex/``, from npm: ``tools/site/vendor_katex.sh``), and every
page has a bar with the lesson list, previous / next, search over every lesson's
prose (``assets/search-index.js``, built here) and the page's sections.  A page that
would still load something from the network is a problem.  To publish it, copy
``_site/`` to any static host.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

# an explorer drawn in the browser: its snapshot's mime type, the mime type that says an output is an explorer,
# and the script that draws it (JupyterLab and here)
from course_lib.widgets.browser import PANEL_MIME, SNAPSHOT_MIME
from course_lib.widgets.browser import SCRIPT as EXPLORER_JS

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "tools" / "site"  # the page template and the assets every page loads (copied to _site/assets/)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
STATIC_MIME = ("image/png", "image/jpeg", "image/svg+xml")
#: what tqdm's notebook progress bar says as text: "train: 100%|##########| 30/30 [00:01<00:00, ...]"
PROGRESS_TEXT = re.compile(r"\|\s*\d+/\d+ \[")
IMG_ALT = re.compile(r'<img\b[^>]*\balt="([^"]*)"')
LIVE_STYLE = "border-left:4px solid #1976d2;padding:4px 10px;color:#555;background:#f3f7fd;font-size:90%"
#: The words of the site itself, in each language of the course (a page speaks its lesson's language).
UI = {
    "en": {"code": "en", "name": "English", "course": "Eye · Brain · Judgement", "lesson": "Lesson {n}",
           "search": "Search every lesson", "toc": "On this page", "pager": "previous and next lesson",
           "progress": "[progress bar: it moves while the cell runs in JupyterLab]",
           "live": "&#9881; Live explorer: open this notebook in JupyterLab to move its controls. The static figure "
                   "below shows what it draws.",
           "alive": "&#9881; Live explorer: its controls work here, on the photo this page was built with; where a "
                    "value needs new computation they offer the values made in advance (a new photo or any other "
                    "value needs the kernel: open the notebook in JupyterLab). The static figure follows it.",
           "intro": "Backbone (主干网络) → neck (颈部) → head (头部) of deep vision models. Each lesson below was "
                    "executed top to bottom to make this page; open the notebooks in JupyterLab to use the live "
                    "explorers.",
           "row": "{explorers} explorer(s), {figures} figure(s), built in {seconds:.0f} s, {mb:.1f} MB"},
    "zh": {"code": "zh-CN", "name": "中文", "course": "眼睛 · 大脑 · 判断", "lesson": "第 {n} 课",
           "search": "搜索全部课程", "toc": "本页目录", "pager": "上一课与下一课",
           "progress": "[进度条：在 JupyterLab 中运行单元格时它会走动]",
           "live": "&#9881; 交互探索器：在 JupyterLab 中打开本笔记本即可拖动它的控件。下面的静态图展示了它画出的内容。",
           "alive": "&#9881; 交互探索器：它的控件在本页就能用，作用于构建本页时的那张照片；需要重新计算的控件只提供预先算好的取值"
                    "（换照片或取其他值需要内核：请在 JupyterLab 中打开笔记本）。其后是它的静态图。",
           "intro": "深度视觉模型的主干网络（backbone）→ 颈部（neck）→ 头部（head）。下面每一课都从头到尾执行过一遍才生成"
                    "本页；在 JupyterLab 中打开笔记本即可使用交互探索器。",
           "row": "{explorers} 个探索器，{figures} 张图，构建用时 {seconds:.0f} 秒，{mb:.1f} MB"},
}


def live_note(lang: str = "en", snapshot: dict | None = None) -> str:
    """The note that stands where a live explorer was, above its static figure; with the ``snapshot`` of an
    explorer drawn in the browser, the explorer itself follows the note, alive (``assets/explorer.js``)."""
    if snapshot is None:
        return f'<div class="course-live-note" style="{LIVE_STYLE}">{UI[lang]["live"]}</div>'
    data = json.dumps(snapshot, ensure_ascii=False).replace("</", "<\\/")    # safe inside <script>
    return (f'<div class="course-live-note" style="{LIVE_STYLE}">{UI[lang]["alive"]}</div>'
            f'<div class="cl-snapshot"><script type="application/json">{data}</script></div>')


def language_of(notebook: Path) -> str:
    """``"zh"`` for a Chinese lesson (``notebooks/zh/``), else ``"en"``."""
    return "zh" if notebook.parent.name == "zh" else "en"


def page_name(notebook: Path) -> str:
    """The page of a lesson: ``<stem>.html`` in English, ``<stem>.zh.html`` in Chinese (one folder, so every
    page finds ``assets/`` and its neighbours the same way)."""
    lang = language_of(notebook)
    return f"{notebook.stem}.html" if lang == "en" else f"{notebook.stem}.{lang}.html"


def index_name(lang: str) -> str:
    return "index.html" if lang == "en" else f"index.{lang}.html"


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
    bytes: int = 0
    lang: str = "en"
    alive: int = 0          # explorers that come alive from their snapshot (the rest: an image picker)


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


def replace_widgets(nb, lang: str = "en") -> tuple[int, int, list[str]]:
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
                out["data"] = {"text/plain": UI[lang]["progress"]}  # it moved while the cell ran; nothing to show
                outputs.append(out)
                continue
            explorers += 1
            panel = data.get(PANEL_MIME, {})
            if panel.get("explorer") and SNAPSHOT_MIME not in data:
                problems.append(f"code cell {i}: the {panel.get('panel')} came without its snapshot, so it would be "
                                "a dead picture on the site")
            static = {m: data[m] for m in STATIC_MIME if m in data}
            out["data"] = {"text/html": live_note(lang, data.get(SNAPSHOT_MIME)),
                           "text/plain": "[live explorer: open in JupyterLab]"}
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


PNG_URL = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=\s]+)")


def lighter_picture(png_b64: str, quality: int = 90) -> str | None:
    """A PNG (base64) as JPEG (base64) where that takes under 2/3 of the bytes -- a figure of photos and heat
    maps, composed on the page's white -- else ``None`` (diagrams and plots stay PNG, sharp)."""
    import io

    from PIL import Image

    raw = "".join(png_b64.split())
    img = Image.open(io.BytesIO(base64.b64decode(raw)))
    if img.mode in ("RGBA", "LA", "P"):                 # on the page's white, as the reader sees it
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    jpeg = base64.b64encode(buf.getvalue()).decode()
    return jpeg if len(jpeg) < len(raw) * 2 / 3 else None


def lighten_pictures(nb) -> int:
    """Send every photo-like PNG picture of the executed notebook to the page as JPEG (:func:`lighter_picture`):
    the output's own picture and every one inside its HTML (the ``<img>`` that carries the alt text).  The
    lessons' files are untouched; returns the bytes saved on the page."""
    saved = 0

    def swap(m: re.Match) -> str:
        nonlocal saved
        jpeg = lighter_picture(m.group(1))
        if jpeg is None:
            return m.group(0)
        saved += len(m.group(1)) - len(jpeg)
        return f"data:image/jpeg;base64,{jpeg}"

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            page = data.get("text/html")
            if page:
                data["text/html"] = PNG_URL.sub(swap, "".join(page) if isinstance(page, list) else page)
            raw = data.get("image/png")
            if not raw or page:          # with HTML the page shows the HTML: the PNG there is not on the page
                continue
            raw = "".join(raw) if isinstance(raw, list) else raw
            jpeg = lighter_picture(raw)
            if jpeg is None:
                continue
            del data["image/png"]
            data["image/jpeg"] = jpeg
            meta = out.get("metadata", {})
            if "image/png" in meta:
                meta["image/jpeg"] = meta.pop("image/png")
            saved += len(raw) - len(jpeg)
    return saved


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
            tag = "" if page.lang == "en" else f"{page.lang}_"
            name = f"{tag}{page.notebook.stem.split('_')[0]}_cell{pic.cell:02d}_{pic.index}.{ext}"
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


OUTSIDE = re.compile(r"""<(?:script|link|img|iframe|source|video|audio)\b[^>]*\b(?:src|href)=["']((?:https?:)?//[^"']+)"""
                     r"""|url\(\s*["']?((?:https?:)?//[^)"']+)|\bimport\s*\(\s*["']((?:https?:)?//[^"']+)""", re.I)


def outside_requests(page: str) -> list[str]:
    """What a page would load from the network: scripts, styles, pictures, fonts and modules with an
    ``http(s)://`` address (links a reader may click, ``<a href=...>``, are not loads)."""
    return [next(g for g in m.groups() if g) for m in OUTSIDE.finditer(page)]


def language_switch(lang: str, other: dict[str, str]) -> str:
    """Links to the same page in the other languages (``other``: language -> page name)."""
    return "".join(f'<a class="course-lang" lang="{UI[o]["code"]}" hreflang="{UI[o]["code"]}" '
                   f'href="{html.escape(name)}">{UI[o]["name"]}</a>' for o, name in other.items() if o != lang)


def nav_html(lessons: list[tuple[str, str]], i: int, lang: str = "en",
             other: dict[str, str] | None = None) -> tuple[str, str]:
    """The bar on top of page ``i`` (home, previous / next, search, the other language, this page's sections)
    and the pager at its bottom; ``lessons`` is ``[(html file name, "NN · title"), ...]`` in course order, in
    the page's language ``lang``; ``other`` names this page in other languages (language -> page)."""
    ui = UI[lang]

    def link(j: int, arrow: str) -> str:
        if not 0 <= j < len(lessons):
            return "<span></span>"
        name, label = lessons[j]
        short = ui["lesson"].format(n=name.split("_")[0])
        text = f"&larr; {short}" if arrow == "prev" else f"{short} &rarr;"
        return f'<a class="course-{arrow}" rel="{arrow}" href="{html.escape(name)}" title="{html.escape(label)}">{text}</a>'

    options = "".join(f'<option value="{html.escape(n)}"{" selected" if j == i else ""}>{html.escape(lab)}</option>'
                      for j, (n, lab) in enumerate(lessons))
    switch = language_switch(lang, other or {})
    top = (f'<nav class="course-nav" aria-label="course"><a class="course-home" href="{index_name(lang)}">'
           f'{ui["course"]}</a>{link(i - 1, "prev")}<select aria-label="lesson" onchange="location.href=this.value">'
           f'{options}</select>{link(i + 1, "next")}<span class="course-search-wrap"><input type="search" '
           f'id="course-search" placeholder="{ui["search"]}" aria-label="{ui["search"]}">'
           f'<ul id="course-search-results" hidden></ul></span>{switch}</nav>'
           f'<details class="course-toc" open><summary>{ui["toc"]}</summary><ul id="course-toc"></ul></details>')
    bottom = (f'<nav class="course-pager" aria-label="{ui["pager"]}">{link(i - 1, "prev")}{link(i + 1, "next")}'
              "</nav>")
    return top, bottom


@contextlib.contextmanager
def kernel_environment(**extra: str) -> Iterator[None]:
    """The environment the lessons' kernels start in while the site builds: figures land in the page as they do
    in JupyterLab (the inline backend, even when the caller -- pytest sets MPLBACKEND=Agg -- asked for
    another one), plus ``extra``; the caller's environment comes back afterwards."""
    wanted = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", **extra}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build_page(path: Path, out_dir: Path, timeout: int = 600, nav: tuple[str, str] = ("", "")) -> Page:
    """Execute ``path`` in memory and write its page (:func:`page_name`) into ``out_dir`` (``nav``:
    :func:`nav_html`'s bar and pager)."""
    lang = language_of(path)
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    ep = ExecutePreprocessor(timeout=timeout, kernel_name="python3", store_widget_state=False)
    problems: list[str] = []
    try:                            # in build_site's kernel_environment()
        ep.preprocess(nb, {"metadata": {"path": str(path.parent)}})
    except CellExecutionError as err:
        problems.append(f"execution failed: {str(err).strip().splitlines()[-1] if str(err).strip() else err!r}")
    seconds = time.perf_counter() - t0
    problems += errors_of(nb)
    explorers, statics, widget_problems = replace_widgets(nb, lang)
    problems += widget_problems
    pictures, picture_problems = pictures_of(nb)
    problems += picture_problems
    lighten_pictures(nb)        # after the checks, which read the pictures as the lesson drew them
    exporter = HTMLExporter(template_name="course", extra_template_basedirs=[str(SITE / "templates")],
                            language_code=lang)      # <html lang=...>: ISO 639-1, "en" or "zh"
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title_of(nb)},
                                                         "course_nav_top": nav[0], "course_nav_bottom": nav[1]})
    problems += [f"the page would load {url} from the network" for url in outside_requests(body)]
    target = out_dir / page_name(path)
    target.write_text(body, encoding="utf-8")
    return Page(path, target, title_of(nb), seconds, explorers, statics, problems, pictures, len(body.encode()), lang,
                body.count('<div class="cl-snapshot">'))


class _Sections(HTMLParser):
    """The prose of a rendered page, cut at its headings: ``[(anchor id, heading, text), ...]``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections: list[list[str]] = []
        self.depth = 0          # <div> nesting; > 0 inside a markdown cell
        self.heading: list[str] | None = None
        self.skip = 0           # inside the heading's permalink (the pilcrow)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and self.depth:
            self.depth += 1
        elif tag == "div" and "jp-MarkdownCell" in (a.get("class") or ""):
            self.depth = 1
        elif self.depth and tag in ("h1", "h2", "h3") and a.get("id"):
            self.sections.append([a["id"], "", ""])
            self.heading = self.sections[-1]
        elif self.depth and tag == "a" and "anchor-link" in (a.get("class") or ""):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag == "div" and self.depth:
            self.depth -= 1
        elif tag in ("h1", "h2", "h3"):
            self.heading = None
        elif tag == "a" and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.depth or self.skip:
            return
        if not self.sections:
            self.sections.append(["", "", ""])
        slot = 1 if self.heading is not None else 2
        self.sections[-1][slot] += data


def search_entries(page: Path, label: str, lang: str = "en") -> list[dict[str, str]]:
    """One search entry per section of a rendered lesson: page, lesson, heading, anchor, its prose and its
    language (a page's search looks in the lessons of its own language)."""
    parser = _Sections()
    parser.feed(page.read_text(encoding="utf-8"))
    return [{"p": page.name, "l": label, "h": " ".join(h.split()), "a": anchor, "t": " ".join(t.split()), "g": lang}
            for anchor, h, t in parser.sections if h.strip() or t.strip()]


def write_assets(pages: list[Page], out_dir: Path) -> Path:
    """``_site/assets/``: the course's script and style, KaTeX, and the search index over every page."""
    assets = out_dir / "assets"
    shutil.copytree(SITE / "assets", assets, dirs_exist_ok=True)
    shutil.copy(EXPLORER_JS, assets / "explorer.js")
    entries = [e for p in pages for e in search_entries(p.html, label_of(p), p.lang)]
    index = assets / "search-index.js"
    index.write_text("window.COURSE_SEARCH = " + json.dumps(entries, ensure_ascii=False) + ";\n", encoding="utf-8")
    return index


def lesson_label(stem: str, title: str) -> str:
    """How the lesson lists name a lesson: its title, with its number in front unless the title has it."""
    number = stem.split("_")[0]
    return title if number in title.split("—")[0] else f"{number} · {title}"


def label_of(page: Page) -> str:
    return lesson_label(page.notebook.stem, page.title)


def write_index(pages: list[Page], out_dir: Path) -> Path:
    """``_site/index.html`` (the lesson list, with search; ``index.<lang>.html`` in each other language) and
    ``build.json`` (what the build measured); returns the English index (or the only one)."""
    langs = list(dict.fromkeys(p.lang for p in pages))
    for lang in langs:
        ui = UI[lang]
        rows = "\n".join(
            f'<li><a href="{html.escape(p.html.name)}">{html.escape(label_of(p))}</a> <small>('
            + ui["row"].format(explorers=p.explorers, figures=p.static_figures, seconds=p.seconds, mb=p.bytes / 2**20)
            + f"{'; PROBLEMS' if p.problems else ''})</small></li>"
            for p in pages if p.lang == lang
        )
        switch = language_switch(lang, {o: index_name(o) for o in langs})
        (out_dir / index_name(lang)).write_text(
            f"<!DOCTYPE html>\n<html lang='{ui['code']}'><head><meta charset='utf-8'><title>{ui['course']}</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1.0'>"
            "<link rel='stylesheet' href='assets/course.css'>"
            "<style>main{font-family:sans-serif;max-width:760px;margin:1em auto;line-height:1.5;padding:0 12px}</style>"
            f"</head><body><nav class='course-nav' aria-label='course'><span class='course-home'>{ui['course']}"
            f"</span><span class='course-search-wrap'><input type='search' id='course-search' placeholder='"
            f"{ui['search']}' aria-label='{ui['search']}'><ul id='course-search-results' hidden></ul></span>{switch}"
            f"</nav><main><h1>{ui['course']}</h1><p>{ui['intro']}</p>\n<ol>\n{rows}\n</ol></main>"
            "<script src='assets/search-index.js'></script><script src='assets/course.js'></script></body></html>\n",
            encoding="utf-8",
        )
    (out_dir / "build.json").write_text(
        json.dumps(
            [
                {"notebook": p.notebook.name, "lang": p.lang, "html": p.html.name, "title": p.title,
                 "seconds": round(p.seconds, 1), "bytes": p.bytes, "explorers": p.explorers,
                 "alive": p.alive,
                 "static_figures": p.static_figures, "problems": p.problems}
                for p in pages
            ],
            indent=1, ensure_ascii=False,
        )
    )
    return out_dir / index_name("en" if "en" in langs else langs[0])


def lessons_in(lang: str) -> list[Path]:
    """The lessons of one language of the course, in order (English in ``notebooks/``, Chinese in ``notebooks/zh/``)."""
    folder = ROOT / "notebooks" if lang == "en" else ROOT / "notebooks" / lang
    return sorted(folder.glob("[0-9]*.ipynb"))


def build_site(notebooks: list[Path], out_dir: Path, timeout: int = 600, jobs: int = 1) -> list[Page]:
    """Execute and render every notebook (``jobs`` at a time, each kernel with ``cpu_count // jobs`` threads),
    then the search index, the lesson lists and the figure gallery."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_lang: dict[str, list[Path]] = {}
    for nb in notebooks:
        by_lang.setdefault(language_of(nb), []).append(nb)
    lessons = {lang: [(page_name(nb), lesson_label(nb.stem, title_of(nbformat.read(nb, as_version=4))))
                      for nb in nbs] for lang, nbs in by_lang.items()}

    def one(nb: Path) -> Page:
        lang = language_of(nb)
        i = by_lang[lang].index(nb)
        other = {o: page_name(n) for o, nbs in by_lang.items() for n in nbs if n.stem == nb.stem}
        page = build_page(nb, out_dir, timeout, nav=nav_html(lessons[lang], i, lang, other))
        status = "ok" if not page.problems else "PROBLEMS:\n  " + "\n  ".join(page.problems)
        print(f"{nb.relative_to(ROOT) if nb.is_relative_to(ROOT) else nb.name}: {page.seconds:.1f} s, "
              f"{page.bytes / 2**20:.1f} MB, {page.explorers} explorer(s) ({page.alive} alive), "
              f"{page.static_figures} figure(s): {status}", flush=True)
        return page

    threads = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    print(f"executing {len(notebooks)} notebook(s), {jobs} at a time ...", flush=True)
    with kernel_environment(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads):
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            pages = list(pool.map(one, notebooks))
    write_assets(pages, out_dir)
    write_index(pages, out_dir)
    print(f"every figure, with its alt text, in {write_figures(pages, out_dir)}")
    return pages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path,
                    help="notebooks to render (default: every lesson in every language: notebooks/, notebooks/zh/)")
    ap.add_argument("--lang", choices=sorted(UI), action="append",
                    help="build only this language's lessons (repeat for several; default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "_site", help="output folder (default: _site/)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                    help="notebooks executed at a time (default: one per CPU core, at most 4: each kernel "
                         "holds up to about 1.6 GB)")
    args = ap.parse_args(argv)
    notebooks = args.notebooks or [nb for lang in (args.lang or list(UI)) for nb in lessons_in(lang)]
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 1
    pages = build_site([p.resolve() for p in notebooks], args.out, args.timeout, args.jobs)
    print(f"site written to {args.out / 'index.html'}" + ("" if len({p.lang for p in pages}) == 1 else
                                                          f" (and {', '.join(index_name(x) for x in UI if x != 'en')})"))
    return 1 if any(p.problems for p in pages) else 0


if __name__ == "__main__":
    sys.exit(main())
