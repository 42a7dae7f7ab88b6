"""The static site: every lesson executed and rendered by ``tools/build_site.py`` (what ``make site`` does).

Builds the whole site once, into a temporary folder, and checks what a reader
of the site gets: every lesson ran without errors, every live explorer became
a note followed by its own static figure, the index links every page, and
``notebooks/`` was not touched.  Both languages: every English lesson and its
Chinese twin (``notebooks/zh/``), each page linking the other.

``COURSE_SITE=_site`` checks a site ``make site`` has just built instead of building
one more (``.ci/run`` does: it builds the site first, then runs the tests on it).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import sys
from pathlib import Path

import pytest
from tool_scripts import load_tool

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")) + sorted((ROOT / "notebooks" / "zh").glob("[0-9]*.ipynb"))
IMG = re.compile(r'src="data:image/(?:png|jpeg|svg)')


def _build_site_module():
    return load_tool("build_site")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    built = os.environ.get("COURSE_SITE")
    if built:                              # made by `make site` just before (its notebooks checked by .ci/run)
        out = Path(built).resolve()
        build = {b["html"]: b for b in json.loads((out / "build.json").read_text())}
        return out, int(any(b["problems"] for b in build.values())), build, True
    out = tmp_path_factory.mktemp("site")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in LESSONS}
    status = _build_site_module().main(["--out", str(out)])
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in LESSONS}
    build = {b["html"]: b for b in json.loads((out / "build.json").read_text())}
    return out, status, build, before == after


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_whole_site_builds_and_every_explorer_has_its_static_figure(site):
    out, status, build, untouched = site
    assert untouched, "building the site changed notebooks/"
    # every picture of every lesson has its words and keeps the figure rules (the problems below say which not),
    # and all of them are in one folder for review
    assert (out / "figures" / "index.html").exists()
    assert len(list((out / "figures").glob("*.png"))) >= sum(b["static_figures"] for b in build.values())
    site = _build_site_module()
    assert sorted(build) == sorted(site.page_name(p) for p in LESSONS)
    assert {b["lang"] for b in build.values()} == {"en", "zh"}
    problems = {name: b["problems"] for name, b in build.items() if b["problems"]}
    assert not problems, problems
    assert status == 0
    assert sum(b["explorers"] for b in build.values()) >= 10  # lessons 00, 01, 02, 04, 05, 06, 07, 09, 10 have explorers
    for name, b in build.items():
        page = (out / b["html"]).read_text(encoding="utf-8")
        # It executed: outputs are there, and none of them is an error.
        assert "Traceback" not in page and "jp-RenderedText" in page, name
        assert "application/vnd.jupyter.widget-view+json" not in page, name
        # Every live explorer became a note, and each note is followed by its static figure before the next one.
        notes = page.split("course-live-note")
        assert len(notes) - 1 == b["explorers"], name
        for i, after in enumerate(notes[1:]):
            assert IMG.search(after), f"{name}: explorer {i} has no static figure after its note"
        assert b["static_figures"] >= b["explorers"], name
        assert len(IMG.findall(page)) >= b["static_figures"], name
    for name in ("00_the_big_picture.html", "00_the_big_picture.zh.html"):
        lesson00 = (out / name).read_text(encoding="utf-8")
        assert "Egyptian cat" in lesson00  # lesson 00's verdict on the cat photo, computed at build time
    zh00 = (out / "00_the_big_picture.zh.html").read_text(encoding="utf-8")
    assert '<html lang="zh">' in zh00 and "第 00 课" in zh00 and 'href="00_the_big_picture.html"' in zh00
    assert 'href="00_the_big_picture.zh.html"' in (out / "00_the_big_picture.html").read_text(encoding="utf-8")

    for lang, name in (("en", "index.html"), ("zh", "index.zh.html")):
        index = (out / name).read_text(encoding="utf-8")
        for b in build.values():
            assert (f'href="{b["html"]}"' in index) == (b["lang"] == lang), (name, b["html"])
            assert html.escape(b["title"]) in index or b["lang"] != lang
    # offline: every page loads only what is next to it, and the site can be searched
    for b in [*build.values(), {"html": "index.html"}, {"html": "index.zh.html"}]:
        assert site.outside_requests((out / b["html"]).read_text(encoding="utf-8")) == [], b["html"]
    assert (out / "assets" / "katex" / "katex.min.js").is_file() and (out / "assets" / "course.js").is_file()
    searched = (out / "assets" / "search-index.js").read_text(encoding="utf-8")
    assert all(f'"p": "{b["html"]}"' in searched for b in build.values())
    assert all(0 < b["bytes"] == (out / b["html"]).stat().st_size for b in build.values())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_built_site_works_offline_in_a_browser(site):
    """Every page of the built site, opened from disk in Chromium with every http(s) request blocked and
    counted: it loads with no console error and no outside request, has its lesson bar, KaTeX draws lesson
    06's math, and the index's search finds a section of another page."""
    sys.path.insert(0, str(ROOT / "tests" / "browser"))
    from lab_driver import find_chromium, missing

    chromium = find_chromium()
    if chromium is None:
        missing("no Chromium browser found")
    out, _, build, _ = site
    # Playwright's sync API refuses to run where an asyncio loop runs (the site build's kernels leave one): a
    # thread of its own has none.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        outside, errors = pool.submit(_browse_site, chromium, out, build).result()
    assert outside == [] and errors == [], (outside, errors)


def _browse_site(chromium: str, out: Path, build: dict) -> tuple[list[str], list[str]]:
    from playwright.sync_api import sync_playwright

    outside, errors, alive = [], [], {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            ctx = browser.new_context()
            ctx.route("http*://**", lambda route: (outside.append(route.request.url), route.abort()))
            page = ctx.new_page()
            page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
            for b in build.values():
                page.goto((out / b["html"]).as_uri(), wait_until="load")
                same = sum(o["lang"] == b["lang"] for o in build.values())     # the lessons of its language
                assert page.locator("nav.course-nav select option").count() == same, b["html"]
                assert page.locator("nav.course-nav a.course-lang").count() == 1, b["html"]
                assert page.locator("#course-toc li").count() >= 2, b["html"]        # its sections, listed
                if b["notebook"].startswith("06_"):
                    assert page.locator(".jp-MarkdownCell .katex").count() >= 10
                    assert page.locator(".katex-error").count() == 0
                alive.update(_move_every_explorer(page, b["html"]))
            page.goto((out / "index.html").as_uri(), wait_until="load")
            page.fill("#course-search", "SPPF")
            first = page.locator("#course-search-results li a").first
            assert (first.get_attribute("href") or "").startswith("05_"), first.get_attribute("href")
            assert ".zh." not in (first.get_attribute("href") or "")             # English pages search English
            page.goto((out / "index.zh.html").as_uri(), wait_until="load")
            page.fill("#course-search", "感受野")
            found = page.locator("#course-search-results li a")
            assert found.count() >= 2 and all(".zh.html" in (a.get_attribute("href") or "") for a in found.all())
        finally:
            browser.close()
    # every explorer is alive here too, without a kernel (one that came without its snapshot is a build problem)
    assert len(alive) == sum(b["alive"] for b in build.values()) >= 2 * 11, alive
    assert all(alive.values()), {k: v for k, v in alive.items() if not v}
    return outside, errors


#: What an explorer shows, read off the page: every canvas's pixels and the text of its HTML parts.
PICTURE_JS = ("e => [...e.querySelectorAll('canvas')].map(c => c.toDataURL()).join('|') + '|' + "
              "[...e.querySelectorAll('.cl-frames > div')].map(d => d.innerHTML).join('|')")


def _move_every_explorer(page, name: str) -> dict[str, bool]:
    """Move the first control (a slider: an arrow key; a list: the next option) of every live explorer of the
    page: did its picture change?"""
    moved = {}
    roots = page.locator(".cl-snapshot .cl-explorer")
    for i in range(roots.count()):
        root = roots.nth(i)
        # its picture: a canvas, or (the part swapper's table of shapes) the HTML its pictures are made of
        assert root.locator("canvas, .cl-frames > div").count() >= 1, (name, i)
        expect = json.loads(page.locator(".cl-snapshot").nth(i).locator("script").text_content()).get("expect", {})
        for key, value in expect.items():              # what Python counted in this state (boxes before / after NMS)
            assert int(root.get_attribute(f"data-{key}")) == value, (name, i, key)
        root.scroll_into_view_if_needed()
        before = root.evaluate(PICTURE_JS)
        control = root.locator(".cl-controls input[type=range], .cl-controls select").first
        if control.evaluate("e => e.tagName") == "SELECT":
            n, at = control.evaluate("e => [e.options.length, e.selectedIndex]")
            control.select_option(index=(at + 1) % n)
        else:
            at_max = control.evaluate("e => Number(e.value) >= Number(e.max)")
            control.press("ArrowLeft" if at_max else "ArrowRight")
        moved[f"{name} explorer {i}"] = root.evaluate(PICTURE_JS) != before     # the picture changed
    return moved


def test_an_explorer_without_its_static_figure_is_reported():
    """The check itself: a widget output with no picture of its own is a problem the build reports."""
    import nbformat

    site = _build_site_module()
    nb = nbformat.v4.new_notebook()
    widget_out = nbformat.v4.new_output("display_data", data={site.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "VBox()"})
    png_out = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    nb.cells = [nbformat.v4.new_code_cell("explorer.widget", outputs=[widget_out]),
                nbformat.v4.new_code_cell("explorer.static_figure()", outputs=[png_out])]
    explorers, statics, problems = site.replace_widgets(nb)
    assert (explorers, statics) == (1, 1)
    assert len(problems) == 1 and "code cell 0" in problems[0] and "without its static figure" in problems[0]
    assert site.WIDGET_VIEW not in nb.cells[0].outputs[0]["data"]

    # a progress bar is no explorer: it becomes a line of text
    bar = nbformat.v4.new_output("display_data", data={site.WIDGET_VIEW: {"model_id": "y"},
                                                       "text/plain": "train: 100%|##########| 30/30 [00:01<00:00]"})
    nb.cells = [nbformat.v4.new_code_cell("fit(...)", outputs=[bar])]
    assert site.replace_widgets(nb) == (0, 0, [])
    assert nb.cells[0].outputs[0]["data"] == {"text/plain": site.UI["en"]["progress"]}


def test_an_explorer_without_its_snapshot_is_reported_as_a_dead_picture():
    """Every explorer must come alive on the site: one whose output says it is an explorer but brings no
    snapshot is a build problem; an image picker (a panel, not an explorer) is not."""
    import nbformat

    site = _build_site_module()
    png = "iVBORw0KGgo="
    outs = [nbformat.v4.new_output("display_data", data={site.WIDGET_VIEW: {"model_id": str(i)}, "image/png": png,
                                                         site.PANEL_MIME: {"panel": name, "explorer": explorer},
                                                         "text/plain": "HBox()"})
            for i, (name, explorer) in enumerate((("ImagePicker", False), ("FusionExplorer", True)))]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("picker", outputs=[outs[0]]),
                nbformat.v4.new_code_cell("fusion", outputs=[outs[1]])]
    explorers, _, problems = site.replace_widgets(nb)
    assert explorers == 2 and len(problems) == 1
    assert "code cell 1" in problems[0] and "FusionExplorer" in problems[0] and "dead picture" in problems[0]


def test_photo_figures_travel_as_jpeg_and_diagrams_stay_png():
    """The page weight: a figure of photos goes to the page as JPEG (under 2/3 of the bytes), in its output and
    in the ``<img>`` that carries its alt text; a flat diagram stays PNG."""
    import io

    import nbformat
    import numpy as np
    from PIL import Image

    site = _build_site_module()

    def png(pixels: np.ndarray) -> str:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        return base64.b64encode(buf.getvalue()).decode()

    rng = np.random.default_rng(0)
    photo = png((rng.random((1, 1, 3)) * 160 + np.linspace(0, 1, 300)[None, :, None] * 80
                 + rng.normal(0, 12, (200, 300, 3))).clip(0, 255).astype(np.uint8))
    diagram = np.full((200, 300, 3), 255, np.uint8)
    diagram[50:60, 20:280] = (0, 114, 178)
    diagram = png(diagram)
    nb = nbformat.v4.new_notebook()
    outs = [nbformat.v4.new_output("display_data", data={"image/png": b64, "text/html": f'<img alt="a" src="data:image/png;base64,{b64}">'},
                                   metadata={"image/png": {"alt": "a"}}) for b64 in (photo, diagram)]
    nb.cells = [nbformat.v4.new_code_cell("fig", outputs=outs)]
    wrapped = "\n".join(photo[i:i + 76] for i in range(0, len(photo), 76))   # as a notebook may store it
    alone = nbformat.v4.new_output("display_data", data={"image/png": wrapped}, metadata={"image/png": {"alt": "b"}})
    nb.cells.append(nbformat.v4.new_code_cell("plt.show()", outputs=[alone]))
    assert site.lighten_pictures(nb) > len(photo)
    first, second = nb.cells[0].outputs
    jpeg = site.lighter_picture(photo)
    assert first["data"]["text/html"] == f'<img alt="a" src="data:image/jpeg;base64,{jpeg}">'   # what the page shows
    assert second["data"]["text/html"].endswith(f"base64,{diagram}\">")         # sharp lines: PNG is smaller
    shown = nb.cells[1].outputs[0]
    assert "image/png" not in shown["data"] and shown["data"]["image/jpeg"] == jpeg
    assert shown["metadata"]["image/jpeg"] == {"alt": "b"}


def test_an_explorers_static_figure_follows_its_note():
    """What every course explorer displays (widget view + PNG in one output) becomes a note, then the PNG."""
    import nbformat

    site = _build_site_module()
    nb = nbformat.v4.new_notebook()
    both = nbformat.v4.new_output("display_data", data={site.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "VBox()",
                                                        "image/png": "iVBORw0KGgo="})
    nb.cells = [nbformat.v4.new_code_cell("display(picker, explorer)", outputs=[both, both.copy()])]
    explorers, statics, problems = site.replace_widgets(nb)
    assert (explorers, statics, problems) == (2, 2, [])
    outs = nb.cells[0].outputs
    assert ["course-live-note" in o["data"].get("text/html", "") for o in outs] == [True, False, True, False]
    assert [o["data"].get("image/png") for o in outs[1::2]] == ["iVBORw0KGgo="] * 2


def test_a_picture_without_alt_text_or_breaking_a_rule_is_reported_and_every_picture_is_collected(tmp_path):
    """What the build checks of every picture: its words (alt text) and the figure rules recorded when shown."""
    import base64

    import matplotlib.pyplot as plt
    import nbformat

    from course_lib import render

    site = _build_site_module()
    fig, ax = plt.subplots()
    ax.imshow([[0.0, 1.0]], cmap="jet")
    bad_data, bad_meta = render.picture_bundle(fig)                       # no words, a banned map, no colour bar
    plt.close(fig)
    good = render.describe(render.map_grid([[[0.0, 1.0]]]), "One map, 0 to 1, with its colour bar")
    good_data, good_meta = render.picture_bundle(good)
    plt.close(good)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("bad", outputs=[nbformat.v4.new_output("display_data", data=bad_data,
                                                                                 metadata=bad_meta)]),
                nbformat.v4.new_code_cell("good", outputs=[nbformat.v4.new_output("display_data", data=good_data,
                                                                                  metadata=good_meta)])]
    pictures, problems = site.pictures_of(nb)
    assert [(p.cell, p.alt) for p in pictures] == [(0, None), (1, "One map, 0 to 1, with its colour bar")]
    assert pictures[1].data == base64.b64decode(good_data["image/png"])
    assert any("code cell 0" in p and "without alt text" in p for p in problems)
    assert any("code cell 0" in p and "'jet'" in p for p in problems)
    assert any("code cell 0" in p and "colour bar" in p for p in problems)
    assert not any("code cell 1" in p for p in problems)

    page = site.Page(tmp_path / "00_x.ipynb", tmp_path / "00_x.html", "X", 1.0, problems=problems, pictures=pictures)
    index = site.write_figures([page], tmp_path)
    assert sorted(p.name for p in (tmp_path / "figures").glob("*.png")) == ["00_cell00_0.png", "00_cell01_0.png"]
    text = index.read_text(encoding="utf-8")
    assert "NO ALT TEXT" in text and "One map, 0 to 1, with its colour bar" in text and "&#x27;jet&#x27;" in text


def test_an_explorers_static_figure_keeps_its_alt_text_on_the_page():
    import nbformat

    site = _build_site_module()
    nb = nbformat.v4.new_notebook()
    both = nbformat.v4.new_output("display_data", data={site.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "VBox()",
                                                        "image/png": "iVBORw0KGgo="},
                                  metadata={"image/png": {"alt": "Feature explorer: C3", "course_problems": []}})
    nb.cells = [nbformat.v4.new_code_cell("explorer", outputs=[both])]
    site.replace_widgets(nb)
    static = nb.cells[0].outputs[1]
    assert 'alt="Feature explorer: C3"' in static["data"]["text/html"]
    pictures, problems = site.pictures_of(nb)
    assert [(p.cell, p.alt, p.data[:4]) for p in pictures] == [(0, "Feature explorer: C3", b"\x89PNG")] and not problems


def test_a_picture_shown_twice_is_reported():
    import nbformat

    site = _build_site_module()
    out = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "[picture]"},
                                 metadata={"image/png": {"alt": "A picture", "course_problems": []}})
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("fig", outputs=[out, out.copy()])]
    pictures, problems = site.pictures_of(nb)
    assert len(pictures) == 2 and len(problems) == 1 and "shows picture 1 again" in problems[0]


def test_an_explorer_drawn_in_the_browser_comes_alive_from_its_snapshot():
    """A browser-drawn explorer's output carries its snapshot: the page gets it as JSON, safe inside <script>,
    followed by its static figure, and the page loads the script that draws it."""
    import nbformat

    site = _build_site_module()
    snap = {"payload": {"groups": [], "alt": "a </script> in the text"}, "state": {"k": 3}}
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("ex")]
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={
        site.WIDGET_VIEW: {"model_id": "x"}, site.SNAPSHOT_MIME: snap, "image/png": "iVBORw0KGgo=",
        "text/plain": "ex"}, metadata={"image/png": {"alt": "the explorer"}})]
    explorers, statics, problems = site.replace_widgets(nb)
    assert (explorers, statics, problems) == (1, 1, [])
    note = nb.cells[0].outputs[0]["data"]["text/html"]
    assert '<div class="cl-snapshot"><script type="application/json">' in note and "</script> in" not in note
    body = note.split('type="application/json">')[1].split("</script>")[0]
    assert json.loads(body) == snap
    assert "its controls work here" in note
    assert "the explorer" in nb.cells[0].outputs[1]["data"]["text/html"]          # its static figure follows


def test_a_page_loads_nothing_from_the_network_and_links_its_neighbours(tmp_path):
    """The course template, without executing anything: no CDN script (require.js, MathJax, mermaid),
    KaTeX and the course's assets from next to the page, the lesson bar and the pager, search entries
    cut at the headings."""
    import nbformat

    site = _build_site_module()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Lesson 06 — The head\n\nThe map $M_k = \\sum_c w_{kc} A_c$."),
                nbformat.v4.new_markdown_cell("## 1. Pooling\n\nGlobal average pooling keeps one number per channel."),
                nbformat.v4.new_code_cell("x = 1")]
    lessons = [("05_a.html", "Lesson 05 — A"), ("06_b.html", "Lesson 06 — The head"), ("07_c.html", "Lesson 07 — C")]
    top, bottom = site.nav_html(lessons, 1)
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="course", extra_template_basedirs=[str(site.SITE / "templates")])
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": "x"}, "course_nav_top": top,
                                                         "course_nav_bottom": bottom})
    assert site.outside_requests(body) == []
    assert "require.min.js" not in body and "mathjax" not in body.lower() and "mermaid" not in body
    assert 'src="assets/katex/katex.min.js"' in body and 'href="assets/katex/katex.min.css"' in body
    assert 'src="assets/explorer.js"' in body
    for rel, target in (("prev", "05_a.html"), ("next", "07_c.html")):   # in the bar and in the pager
        links = re.findall(rf'<a [^>]*rel="{rel}"[^>]*>', body)
        assert len(links) == 2 and all(f'href="{target}"' in a for a in links), links
    assert 'id="course-search"' in body and 'id="course-toc"' in body
    page = tmp_path / "06_b.html"
    page.write_text(body, encoding="utf-8")
    entries = site.search_entries(page, "Lesson 06 — The head")
    assert [(e["h"], e["a"]) for e in entries] == [("Lesson 06 — The head", "Lesson-06-%E2%80%94-The-head"),
                                                    ("1. Pooling", "1.-Pooling")]
    assert "$M_k" in entries[0]["t"] and entries[1]["t"].startswith("Global average pooling")
    assert "x = 1" not in " ".join(e["t"] for e in entries)              # prose only, no code
    assert site.outside_requests('<script src="https://cdn.example/x.js"></script><a href="https://arxiv.org">'
                                 "</a><style>@font-face{src:url(//fonts.example/f.woff2)}</style>") == [
        "https://cdn.example/x.js", "//fonts.example/f.woff2"]
    zh_top, zh_bottom = site.nav_html([("06_b.zh.html", "第 06 课 — 头部")], 0, "zh",
                                      {"en": "06_b.html", "zh": "06_b.zh.html"})
    assert 'hreflang="en" href="06_b.html">English</a>' in zh_top and 'hreflang="zh-CN"' not in zh_top
    assert 'placeholder="搜索全部课程"' in zh_top and 'href="index.zh.html"' in zh_top and "上一课与下一课" in zh_bottom
    assert site.page_name(Path("notebooks/zh/06_b.ipynb")) == "06_b.zh.html"
    assert site.page_name(Path("notebooks/06_b.ipynb")) == "06_b.html"
    assert site.lesson_label("06_b", "Lesson 06 — The head") == "Lesson 06 — The head"
    assert site.lesson_label("06_b", "The head") == "06 · The head"
