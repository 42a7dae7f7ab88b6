"""The static site: one lesson executed and rendered by ``tools/build_site.py``.

Builds notebook 00 only (the full site is ``make site``), into a temporary
folder, and checks what a reader of the site gets: the lesson ran without
errors, every live explorer became a note plus a static figure, the index links
the page, and ``notebooks/`` was not touched.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "00_the_big_picture.ipynb"


def _build_site_module():
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "tools" / "build_site.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_site_builds_for_lesson_00(tmp_path):
    if not LESSON.exists():
        pytest.skip(f"{LESSON.name} is not written yet")
    site = _build_site_module()
    before = hashlib.sha256(LESSON.read_bytes()).hexdigest()

    status = site.main(["--out", str(tmp_path), str(LESSON)])

    assert hashlib.sha256(LESSON.read_bytes()).hexdigest() == before, "building the site changed notebooks/"
    build = json.loads((tmp_path / "build.json").read_text())
    assert [b["notebook"] for b in build] == [LESSON.name]
    assert build[0]["problems"] == [], build[0]["problems"]
    assert status == 0

    page = (tmp_path / f"{LESSON.stem}.html").read_text(encoding="utf-8")
    # It executed: outputs are there, and none of them is an error.
    assert "Traceback" not in page and "jp-RenderedText" in page
    assert "Egyptian cat" in page  # lesson 00's verdict on the cat photo, computed at build time
    # Every live explorer became a note; a static figure is there to read instead.
    assert build[0]["explorers"] >= 1
    assert page.count("course-live-note") == build[0]["explorers"]
    assert build[0]["static_figures"] >= build[0]["explorers"] or build[0]["static_figures"] >= 1
    assert len(re.findall(r'src="data:image/(?:png|jpeg|svg)', page)) >= build[0]["static_figures"]
    assert "application/vnd.jupyter.widget-view+json" not in page

    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert f'href="{LESSON.stem}.html"' in index
    assert build[0]["title"] in index


def test_missing_static_figure_is_reported():
    """The check itself: an explorer with no figure near it is a problem the build reports."""
    import nbformat

    site = _build_site_module()
    nb = nbformat.v4.new_notebook()
    widget_out = nbformat.v4.new_output("display_data", data={site.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "VBox()"})
    png_out = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    nb.cells = [nbformat.v4.new_code_cell("explorer.widget", outputs=[widget_out])]
    explorers, statics, problems = site.replace_widgets(nb)
    assert (explorers, statics) == (1, 0) and problems and "no static figure" in problems[0]
    assert site.WIDGET_VIEW not in nb.cells[0].outputs[0]["data"]

    nb.cells.append(nbformat.v4.new_code_cell("explorer.static_figure()", outputs=[png_out]))
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={site.WIDGET_VIEW: {"model_id": "x"}})]
    assert site.replace_widgets(nb)[2] == []
