"""The static site: every lesson executed and rendered by ``tools/build_site.py`` (what ``make site`` does).

Builds the whole site once, into a temporary folder, and checks what a reader
of the site gets: every lesson ran without errors, every live explorer became
a note followed by its own static figure, the index links every page, and
``notebooks/`` was not touched.
"""

from __future__ import annotations

import hashlib
import html
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
IMG = re.compile(r'src="data:image/(?:png|jpeg|svg)')


def _build_site_module():
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "tools" / "build_site.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in LESSONS}
    status = _build_site_module().main(["--out", str(out)])
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in LESSONS}
    build = {b["notebook"]: b for b in json.loads((out / "build.json").read_text())}
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
    assert sorted(build) == [p.name for p in LESSONS]
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
    lesson00 = (out / build[LESSONS[0].name]["html"]).read_text(encoding="utf-8")
    assert "Egyptian cat" in lesson00  # lesson 00's verdict on the cat photo, computed at build time

    index = (out / "index.html").read_text(encoding="utf-8")
    for b in build.values():
        assert f'href="{b["html"]}"' in index and html.escape(b["title"]) in index


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
    assert nb.cells[0].outputs[0]["data"] == {"text/plain": site.PROGRESS_NOTE}


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
