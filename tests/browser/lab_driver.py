"""Drive JupyterLab like a learner does: open a notebook, run it, move its widgets.

Kept generic on purpose: nothing here knows a lesson's contents.  The driver
finds ipywidgets controls in the rendered outputs (sliders, dropdowns, toggle
buttons, radio buttons, checkboxes, the ``FileUpload`` input) and compares what
the widgets *render* (image sources, HTML/label text, Output-widget contents)
before and after a change.  The controls' own readouts are left out of that
comparison, so "the output changed" means the lesson's picture or text changed,
not just the number next to the slider.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Everything a widget area *renders*, excluding the controls' own state.
SNAPSHOT_JS = """
(area) => {
  const controls = '.widget-slider, .widget-dropdown, .widget-toggle-buttons, .widget-radio, .widget-checkbox, '
                 + '.widget-upload, .widget-toggle-button, .widget-button, .widget-text, .widget-readout';
  const parts = [];
  area.querySelectorAll('img').forEach(e => parts.push('img:' + (e.getAttribute('src') || '')));
  area.querySelectorAll('svg').forEach(e => { if (!e.closest(controls)) parts.push('svg:' + e.outerHTML.length); });
  area.querySelectorAll('canvas').forEach(e => { try { parts.push('canvas:' + e.toDataURL().length); } catch (x) {} });
  area.querySelectorAll('.widget-html-content, .widget-label-basic, .widget-htmlmath-content, '
                        + '.jupyter-widgets-output-area, .widget-valid, .widget-textarea textarea')
      .forEach(e => { if (!e.closest(controls)) parts.push('text:' + (e.innerText || e.value || '')); });
  return parts.join('\\n');
}
"""

def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def find_chromium() -> str | None:
    """The Chromium executable to drive, or None when this machine has none."""
    candidates = [os.environ.get("COURSE_CHROMIUM", "")]
    candidates += [shutil.which(n) or "" for n in ("chromium", "chromium-browser", "google-chrome", "chrome")]
    candidates += ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def missing(reason: str) -> None:
    """Skip with a visible reason on a learner's machine; fail under CI."""
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run in CI; .ci/run installs Chromium)")
    pytest.skip(f"{reason}; install Chromium (e.g. apt-get install chromium) or set COURSE_CHROMIUM")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody is listening on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WIDGET_AREAS = ".jp-Notebook .jp-Cell .jp-OutputArea-output:has(.jupyter-widgets)"


@dataclass
class DriveResult:
    """What happened when one control of one widget area was changed."""

    area: int
    control: str
    changed: bool
    seconds: float
    detail: str = ""


@dataclass
class RunReport:
    code_cells: int = 0
    executed: int = 0
    errors: list[str] = field(default_factory=list)


def notebook(sources: list[str]) -> dict:
    """A notebook (as JSON) whose code cells are ``sources``, for a test or a benchmark to open in the lab."""
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
              "source": src} for i, src in enumerate(sources)]
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                        "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}


def kernel_status(page) -> str | None:
    """The notebook's kernel as its execution indicator says: ``"idle"``, ``"busy"`` ..."""
    return page.evaluate("() => document.querySelector('.jp-Notebook-ExecutionIndicator')"
                         "?.getAttribute('data-status')")


def wait_for_kernel_idle(page, timeout_s: float = 300, settle_s: float = 1.0) -> None:
    """Wait until the kernel is idle, no cell is queued (``[*]``) and that state holds for ``settle_s``."""
    deadline = time.monotonic() + timeout_s
    stable_since = None
    while time.monotonic() < deadline:
        state = page.evaluate(
            """() => {
              const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
              const busy = Array.from(document.querySelectorAll('.jp-InputArea-prompt'))
                                .some(p => p.innerText.includes('*'));
              return {status: ind ? ind.getAttribute('data-status') : null, busy};
            }"""
        )
        if state["status"] == "dead":
            raise AssertionError("the kernel died")
        if state["status"] == "idle" and not state["busy"]:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= settle_s:
                return
        else:
            stable_since = None
        time.sleep(0.25)
    raise AssertionError(f"the kernel did not become idle within {timeout_s:.0f} s")


def dismiss_dialogs(page) -> None:
    """Accept a "Select Kernel" dialog (keeps the notebook's own kernel) if one is open."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        accept = dialog.locator(".jp-mod-accept")
        if accept.count():
            accept.first.click()


def open_notebook(page, base_url: str, rel_path: str, timeout_s: float = 120) -> None:
    page.goto(f"{base_url}/lab/tree/{rel_path}?reset", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    # Wait for the kernel to start (the status bar says "Idle"), accepting a kernel dialog if one shows.
    while time.monotonic() < deadline:
        dismiss_dialogs(page)
        text = page.locator(".jp-StatusBar-Widget").all_inner_texts()
        if any("Idle" in t for t in text):
            return
        time.sleep(0.5)
    raise AssertionError(f"the kernel for {rel_path} did not start within {timeout_s:.0f} s")


def menu(page, top: str, item: str) -> None:
    """Click a JupyterLab main-menu entry by its exact labels, e.g. ``menu(page, "Run", "Run All Cells")``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{re.escape(top)}$")).first.click()
    page.locator(".lm-Menu-content .lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$")).first.click()


def run_all(page, timeout_s: float = 300) -> None:
    menu(page, "Run", "Run All Cells")
    time.sleep(1.0)
    wait_for_kernel_idle(page, timeout_s)


def save(page, nb_file: Path, timeout_s: float = 30) -> dict:
    """Save the notebook from the browser and return the saved file's JSON (outputs included)."""
    before = nb_file.stat().st_mtime_ns if nb_file.exists() else 0
    menu(page, "File", "Save Notebook")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dismiss_dialogs(page)
        if nb_file.exists() and nb_file.stat().st_mtime_ns != before:
            time.sleep(0.3)
            try:
                return json.loads(nb_file.read_text())
            except json.JSONDecodeError:
                pass  # still being written
        time.sleep(0.25)
    raise AssertionError(f"{nb_file.name} was not saved within {timeout_s:.0f} s")


def report(nb: dict) -> RunReport:
    """Count executed code cells and collect every error output of a saved notebook."""
    rep = RunReport()
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        rep.code_cells += 1
        if cell.get("execution_count"):
            rep.executed += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                rep.errors.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return rep


def snapshot(page) -> list[str]:
    """What every widget area renders right now (one string per area)."""
    return page.locator(WIDGET_AREAS).evaluate_all(f"areas => areas.map({SNAPSHOT_JS})")


def _wait_change(page, before: list[str], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if snapshot(page) != before:
            time.sleep(0.3)  # let the rest of the redraw land
            return True
        time.sleep(0.2)
    return False


def _slider_moves(area):
    sliders = area.locator(".widget-slider .noUi-base:visible")
    for i in range(min(sliders.count(), 2)):
        s = sliders.nth(i)

        def move(s=s):
            # A click on the track jumps the handle there (noUiSlider's "tap"), as a learner's click does.
            s.scroll_into_view_if_needed()
            box = s.bounding_box()
            handle = s.locator(".noUi-handle").first
            try:
                lo, hi, now = (float(handle.get_attribute(f"aria-value{k}")) for k in ("min", "max", "now"))
                where = (now - lo) / (hi - lo) if hi > lo else 0.0
            except (TypeError, ValueError):
                where = 0.0
            frac = 0.85 if where < 0.5 else 0.15  # jump well away from where the handle is
            s.page.mouse.click(box["x"] + box["width"] * frac, box["y"] + box["height"] / 2)

        yield f"slider {i}", move


def _dropdown_moves(area):
    selects = area.locator(".widget-dropdown select:visible:enabled")  # hidden or disabled: nothing to try
    for i in range(min(selects.count(), 2)):
        sel = selects.nth(i)
        n = sel.locator("option").count()
        current = sel.evaluate("e => e.selectedIndex")
        others = [k for k in range(n) if k != current]
        if others:
            yield f"dropdown {i} -> option {others[0]}", (lambda sel=sel, j=others[0]: sel.select_option(index=j))


def _click_moves(area, selector: str, label: str):
    items = area.locator(selector)
    for i in range(min(items.count(), 2)):
        yield f"{label} {i}", items.nth(i).click


def candidate_moves(area) -> dict[str, list]:
    """Ways to change a widget area, grouped by kind of control (kinds in the order they are tried)."""
    return {
        "dropdown": list(_dropdown_moves(area)),
        "toggle buttons": list(_click_moves(area, ".widget-toggle-buttons button:not(.mod-active):visible:enabled",
                                             "toggle button")),
        "slider": list(_slider_moves(area)),
        "checkbox": list(_click_moves(area, ".widget-checkbox input[type=checkbox]:visible:enabled", "checkbox")),
        "radio": list(_click_moves(area, ".widget-radio-box input[type=radio]:not(:checked):visible:enabled",
                                    "radio button")),
        "toggle": list(_click_moves(area, "button.widget-toggle-button:visible:enabled", "toggle")),
    }


def drive_areas(page, timeout_s: float = 15, after_response_s: float = 4, max_moves: int = 5) -> list[DriveResult]:
    """Change one control of each kind in every widget area and record whether the rendering changed.

    Each area must answer at least one move (the caller asserts that).  A control can rightly change
    nothing in the current mode (a channel slider while "mean" is shown), so once an area has answered,
    further moves wait only ``after_response_s`` for a change.
    """
    results = []
    areas = page.locator(WIDGET_AREAS)
    for a in range(areas.count()):
        area = areas.nth(a)
        responded = False
        moves = [m for kind in candidate_moves(area).values() for m in kind[:1]]
        for label, move in moves[:max_moves]:
            before = snapshot(page)
            t0 = time.monotonic()
            move()
            changed = _wait_change(page, before, after_response_s if responded else timeout_s)
            results.append(DriveResult(a, label, changed, time.monotonic() - t0))
            wait_for_kernel_idle(page, timeout_s=300, settle_s=0.5)
            responded = responded or changed
    return results


def upload(page, files: list[Path], timeout_s: float = 60) -> tuple[bool, str]:
    """Put ``files`` into the first FileUpload widget; return (rendering changed, widget texts after).

    ipywidgets' upload button opens a file chooser from a detached ``<input type=file>``;
    Playwright answers that chooser exactly as a learner picking a file would.
    """
    button = page.locator(".widget-upload").first
    button.scroll_into_view_if_needed()
    before = snapshot(page)
    with page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files([str(f) for f in files])
    changed = _wait_change(page, before, timeout_s)
    wait_for_kernel_idle(page, timeout_s=300, settle_s=0.5)
    return changed, "\n".join(snapshot(page))


def has_upload(page) -> bool:
    return page.locator(".widget-upload").count() > 0


def log_console_text(page) -> str:
    """Open JupyterLab's log console and return its text.

    Exceptions raised inside widget callbacks never reach a cell's output: ipykernel
    sends them to the log console.  Reading it is how a test sees them.
    """
    if not page.locator(".jp-LogConsole").count():
        menu(page, "View", "Show Log Console")
        page.wait_for_selector(".jp-LogConsole", timeout=15_000)
        time.sleep(0.5)
    return "\n".join(page.locator(".jp-LogConsole").all_inner_texts())


# ------------------------------------------------------------------------------------------ the server
#: JupyterLab user settings for a throwaway server: no news / update toasts, and every cell stays in the DOM
#: (no windowing) so a driver can see every output.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {"theme": "JupyterLab Light"},
}


class LabServer:
    """A running JupyterLab: its URL, the folder it serves and a tiny REST client."""

    def __init__(self, url: str, root: Path, proc: subprocess.Popen, log: Path):
        self.url = url
        self.root = root
        self.proc = proc
        self.log = log

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Stop every kernel (one per notebook test), so memory does not pile up."""
        try:
            for kernel in self.api("/api/kernels"):
                self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@contextlib.contextmanager
def running_lab(root: Path, tmp: Path):
    """JupyterLab on 127.0.0.1:<free port> serving ``root`` (an empty token, ``tmp`` for its settings and
    runtime files), shut down afterwards, process group and all.  Kernels inherit this process's environment."""
    settings = tmp / "user-settings"
    for rel, value in LAB_SETTINGS.items():
        f = settings / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    port = free_port()
    env = dict(os.environ)
    env.update(
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        MPLBACKEND="module://matplotlib_inline.backend_inline",
    )
    env.pop("JPY_SESSION_NAME", None)
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [
        str(jupyter) if jupyter.exists() else "jupyter", "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners often run as root
    log = tmp / "jupyter.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", root, proc, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer on {server.url} within 120 s:\n"
                                       f"{server.log_tail()}") from None
                time.sleep(0.5)
        yield server
    finally:
        _stop(proc)
