"""An explorer drawn in the browser answers its slider while the kernel is busy: the redraw needs no kernel.

Lesson 00's stage explorer in a real JupyterLab: its top-k slider is jslinked to its
:class:`~course_lib.widgets.browser.MapView`.  The next cell keeps the kernel busy for several seconds; an arrow
key on the slider must redraw the canvas in that time (a picture that waited for the kernel could not).
"""

from __future__ import annotations

import json
import time

import lab_driver as lab
import pytest

CELLS = [
    "import course_lib as cl\n"
    "from course_lib.images import imagenet_view\n"
    "model = cl.build_model({'backbone': {'name': 'mobilenet_v2', 'pretrained': True}, 'neck': {'name': 'gap'},\n"
    "                        'head': {'name': 'classification', 'pretrained': True}}).eval()\n"
    "ex = cl.widgets.StageExplorer(model, cl.sample_images()['chelsea'], prepare=imagenet_view)\n"
    "ex",
    "import time\ntime.sleep(20)   # the kernel is busy now",
]


@pytest.mark.timeout(400)
def test_the_canvas_redraws_while_the_kernel_is_busy(lab_server, browser):
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                     "source": src} for i, src in enumerate(CELLS)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (lab_server.root / "busy_kernel.ipynb").write_text(json.dumps(nb))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        lab.open_notebook(page, lab_server.url, "busy_kernel.ipynb")
        lab.menu(page, "Run", "Run All Cells")           # and do not wait: the second cell keeps the kernel busy
        root = page.locator(".cl-explorer").first
        root.wait_for(timeout=120_000)
        assert root.locator("canvas").count() == 1
        page.wait_for_function("() => document.querySelector('.jp-Notebook-ExecutionIndicator')"
                               "?.getAttribute('data-status') === 'busy' && document.querySelector('.cl-explorer')"
                               "?.dataset.drawn", timeout=120_000)
        drawn = int(root.get_attribute("data-drawn"))
        label = root.locator("canvas").get_attribute("aria-label")
        handle = page.locator(".jupyter-widgets .widget-slider .noUi-handle").first
        handle.focus()
        t0 = time.monotonic()
        handle.press("ArrowLeft")
        page.wait_for_function(f"() => Number(document.querySelector('.cl-explorer').dataset.drawn) > {drawn}",
                               timeout=5_000)
        answered = time.monotonic() - t0
        status = page.evaluate("() => document.querySelector('.jp-Notebook-ExecutionIndicator')"
                               ".getAttribute('data-status')")
        assert status == "busy", "the kernel was no longer busy: this proves nothing"
        assert answered < 5
        # the canvas names what it shows: one fewer channel than before (top 8 -> top 7)
        now = page.locator(".cl-explorer canvas").first.get_attribute("aria-label")
        assert now != label and now.count("#") == 7, now
    finally:
        page.close()
        lab_server.shutdown_kernels()
