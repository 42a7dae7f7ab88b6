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
    (lab_server.root / "busy_kernel.ipynb").write_text(json.dumps(lab.notebook(CELLS)))
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
        assert lab.kernel_status(page) == "busy", "the kernel was no longer busy: this proves nothing"
        assert answered < 5
        # the canvas names what it shows: one fewer channel than before (top 8 -> top 7)
        now = page.locator(".cl-explorer canvas").first.get_attribute("aria-label")
        assert now != label and now.count("#") == 7, now
    finally:
        page.close()
        lab_server.shutdown_kernels()


FRAMES_CELLS = [
    "import course_lib as cl\n"
    "from course_lib.images import imagenet_view\n"
    "model = cl.build_model({'backbone': {'name': 'mobilenet_v2', 'pretrained': True}, 'neck': {'name': 'gap'},\n"
    "                        'head': {'name': 'classification', 'pretrained': True}}).eval()\n"
    "cam = cl.widgets.CAMExplorer(model, cl.sample_images()['chelsea'], prepare=imagenet_view, top_k=5)\n"
    "cam",
    "import time\ntime.sleep(15)   # the kernel is busy now",
]


@pytest.mark.timeout(400)
def test_pictures_made_in_python_are_swapped_in_the_browser_and_new_ones_come_once(lab_server, browser):
    """The CAM explorer's pictures are drawn by Python (a FramesView): every class made in advance is swapped in
    while the kernel is busy; a combination not made yet (class 3 by Grad-CAM) waits for the kernel, comes once,
    and is then there."""
    (lab_server.root / "frames.ipynb").write_text(json.dumps(lab.notebook(FRAMES_CELLS)))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        lab.open_notebook(page, lab_server.url, "frames.ipynb")
        lab.menu(page, "Run", "Run All Cells")
        root = page.locator(".cl-explorer").first
        root.wait_for(timeout=120_000)
        page.wait_for_function("() => document.querySelector('.jp-Notebook-ExecutionIndicator')"
                               "?.getAttribute('data-status') === 'busy' && document.querySelector('.cl-explorer')"
                               "?.dataset.frame", timeout=120_000)
        assert root.get_attribute("data-frame") == "[0,0]" and root.locator("canvas").count() == 2
        before = root.locator("canvas").first.evaluate("c => c.toDataURL()")
        page.locator(".jupyter-widgets select").first.select_option(index=3)
        page.wait_for_function("() => document.querySelector('.cl-explorer').dataset.frame === '[3,0]'",
                               timeout=5_000)
        assert lab.kernel_status(page) == "busy", "the kernel was no longer busy: this proves nothing"
        assert root.locator("canvas").first.evaluate("c => c.toDataURL()") != before
        page.get_by_role("button", name="Grad-CAM").click()   # never made: the kernel draws it when it is free
        time.sleep(1)
        assert lab.kernel_status(page) == "busy" and root.get_attribute("data-frame") == "[3,0]"
        page.wait_for_function("() => document.querySelector('.cl-explorer').dataset.frame === '[3,1]'",
                               timeout=60_000)
        assert page.locator(".widget-html").filter(has_text="by Grad-CAM").count() == 1    # the kernel's own text
    finally:
        page.close()
        lab_server.shutdown_kernels()
