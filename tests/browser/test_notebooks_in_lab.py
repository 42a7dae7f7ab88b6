"""Every lesson, in a real JupyterLab, in headless Chromium.

For each notebook in ``notebooks/``: open it, run all cells, wait for the kernel
to go idle, check that no cell shows an error and the browser console stayed
clean, then change the lesson's widgets (sliders, dropdowns, toggles, the
``FileUpload``) and check that what they render changed.  A screenshot of each
notebook lands in ``test-artifacts/browser/``.

New lessons are covered automatically: the test is parametrized over the glob.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from dataclasses import asdict
from pathlib import Path

import lab_driver as lab
import pytest

NOTEBOOKS_DIR = Path(os.environ.get("COURSE_NOTEBOOKS_DIR") or Path(__file__).resolve().parents[2] / "notebooks")
# the English lessons, then the Chinese edition (notebooks/zh/, written by tools/translate.py)
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9]*.ipynb")) + sorted(NOTEBOOKS_DIR.glob("zh/[0-9]*.ipynb"))

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Console messages that are not errors of the course (Chromium noise); keep this list short and explained.
BENIGN_CONSOLE = [
    re.compile(r"favicon", re.I),  # a missing favicon is not a course problem
]


def _params():
    if not NOTEBOOKS:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no notebooks in notebooks/ yet"), id="none")]
    return [pytest.param(p, id=_name(p)) for p in NOTEBOOKS]


def _name(notebook: Path) -> str:
    """``00_the_big_picture``, or ``zh-00_the_big_picture`` for the Chinese edition."""
    rel = notebook.relative_to(NOTEBOOKS_DIR)
    return "-".join([*rel.parent.parts, rel.stem])


@pytest.fixture
def page(browser, lab_server, artifacts_dir, request):
    """A fresh page that records console errors; its kernels are shut down afterwards."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    # The page may only talk to the local server: anything else is aborted (and would show as an error).
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]|blob:|data:).*"), lambda route: route.abort())
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append(f"uncaught: {e}"))
    yield pg
    try:
        name = request.node.callspec.id if hasattr(request.node, "callspec") else request.node.name
        pg.screenshot(path=str(artifacts_dir / f"{name}-final.png"))
    except Exception:  # noqa: BLE001 - a failed screenshot must not hide the real failure
        pass
    context.close()
    lab_server.shutdown_kernels()


def _real_errors(messages: list[str]) -> list[str]:
    return [m for m in messages if not any(p.search(m) for p in BENIGN_CONSOLE)]


def _png(path: Path, name: str = "coffee") -> Path:
    """A real photo (scikit-image's coffee cup) saved as a PNG for the upload widget."""
    from PIL import Image
    from skimage import data

    img = Image.fromarray(getattr(data, name)())
    img.thumbnail((320, 320))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return path


ALT_JS = """() => {
  const imgs = [...document.querySelectorAll('.jp-OutputArea-output img')].filter(i => !i.closest('.jupyter-widgets'));
  const bare = imgs.filter(i => !(i.getAttribute('alt') || '').trim());
  return {with_alt: imgs.length - bare.length, without_alt: bare.map(i => (i.closest('.jp-Cell') || {}).innerText
                                                                     ?.slice(0, 80) || '?')};
}"""


@pytest.mark.timeout(900)
@pytest.mark.parametrize("notebook", _params())
def test_notebook_runs_and_widgets_respond(notebook: Path, page, lab_server, artifacts_dir, tmp_path):
    rel = f"notebooks/{notebook.relative_to(NOTEBOOKS_DIR).as_posix()}"
    name = _name(notebook)
    record: dict = {"notebook": rel}
    t0 = time.monotonic()
    lab.open_notebook(page, lab_server.url, rel)
    record["open_s"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    lab.run_all(page, timeout_s=float(os.environ.get("COURSE_BROWSER_RUN_TIMEOUT", "600")))
    record["run_all_s"] = round(time.monotonic() - t0, 1)
    saved = lab.save(page, lab_server.root / rel)
    rep = lab.report(saved)
    page.screenshot(path=str(artifacts_dir / f"{name}-run.png"))
    if notebook.parent.name == "zh":  # the Chinese edition renders its Chinese prose
        title = page.locator(".jp-MarkdownOutput h1").first.inner_text()
        assert re.match(r"第 \d\d 课", title), title

    assert rep.code_cells > 0, f"{notebook.name} has no code cells"
    assert not rep.errors, f"{notebook.name} shows errors after Run All:\n" + "\n".join(rep.errors)
    assert rep.executed == rep.code_cells, f"only {rep.executed} of {rep.code_cells} code cells ran in {notebook.name}"
    assert not _real_errors(page.console_errors), "browser console errors:\n" + "\n".join(page.console_errors)

    # Every picture in a cell's output (not a live widget's) carries its words for a screen reader.
    pictures = page.evaluate(ALT_JS)
    record["pictures_with_alt"] = pictures["with_alt"]
    assert not pictures["without_alt"], f"{notebook.name}: pictures without alt text: {pictures['without_alt']}"

    areas = lab.snapshot(page)
    record["widget_areas"] = len(areas)
    if not areas:
        # A lesson without explorers (a glossary, a review) is fine; one that builds them and shows none is not.
        code = "\n".join("".join(c["source"]) for c in saved["cells"] if c["cell_type"] == "code")
        assert not re.search(r"\.widget\b|ipywidgets", code), f"{notebook.name} builds widgets but none rendered"
    else:
        results = lab.drive_areas(page)
        record["moves"] = [asdict(r) for r in results]
        summary = "\n".join(f"area {r.area}: {r.control}: changed={r.changed} ({r.seconds:.1f}s)" for r in results)
        # Areas without controls are display-only (live training curves, progress bars): they must show something.
        empty = [i for i, a in enumerate(areas) if i not in {r.area for r in results} and not a.strip()]
        assert not empty, f"{notebook.name}: widget areas {empty} have no controls and render nothing"
        record["display_only_areas"] = len(areas) - len({r.area for r in results})
        driven = {r.area for r in results}
        responsive = {r.area for r in results if r.changed}
        assert driven == responsive, (
            f"{notebook.name}: widget areas {sorted(driven - responsive)} did not redraw:\n{summary}"
        )

    if lab.has_upload(page):
        changed, text = lab.upload(page, [_png(tmp_path / "my_photo.png")])
        record["upload_png_changed"] = changed
        assert changed, f"{notebook.name}: uploading a PNG through the FileUpload widget changed nothing"
        bad = tmp_path / "notes.txt"
        bad.write_text("this is a shopping list, not a photo\n")
        changed, text = lab.upload(page, [bad])
        record["upload_text_changed"] = changed
        assert changed, f"{notebook.name}: uploading a text file gave the learner no message"
        assert re.search(r"not an image", text, re.I), f"no clear message after a bad upload:\n{text[-1500:]}"

    if areas:
        page.locator(lab.WIDGET_AREAS).first.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / f"{name}-widgets.png"))
    (artifacts_dir / f"{name}.json").write_text(json.dumps(record, indent=1))
    # The kernel survived every move and upload, and nothing went wrong on the page.
    lab.wait_for_kernel_idle(page, timeout_s=120)
    log = lab.log_console_text(page)
    assert "Traceback" not in log, f"a widget callback raised (JupyterLab log console):\n{log[-3000:]}"
    assert not _real_errors(page.console_errors), "browser console errors:\n" + "\n".join(page.console_errors)


@pytest.mark.timeout(300)
def test_kernels_started_by_jupyterlab_are_offline(page, lab_server):
    """The server passes the network guard on to its kernels: a cell that reaches out gets a loud error."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('93.184.215.14', 80), timeout=2)\n"
        "    print('CONNECTED')\n"
        "except Exception as err:\n"
        "    print('BLOCKED', type(err).__name__, err)"
    )]
    path = lab_server.root / "offline_probe.ipynb"
    nbformat.write(nb, path)
    lab.open_notebook(page, lab_server.url, path.name)
    lab.run_all(page, timeout_s=120)
    saved = lab.save(page, path)
    texts = [o.get("text", "") for o in saved["cells"][0]["outputs"]]
    text = "".join("".join(t) if isinstance(t, list) else t for t in texts)  # saved JSON splits lines
    assert text.startswith("BLOCKED NetworkBlockedError"), text
    assert "network access is blocked" in text
