"""Fixtures for the browser tests: a throwaway JupyterLab server and headless Chromium.

The server runs on 127.0.0.1 with a free port, serves a *copy* of the repository
(so executing a notebook never writes outputs back into ``notebooks/``), and is
always shut down, process group and all.  It inherits the test environment set by
``tests/conftest.py`` (``COURSE_BLOCK_NETWORK=1`` and the ``netguard_site``
``PYTHONPATH``), so every kernel it starts is offline too.

Chromium comes from the system (Debian's ``/usr/bin/chromium``) or from
``$COURSE_CHROMIUM``.  On a learner's machine without it the browser tests skip
with a visible reason; under CI (``CI=true``) a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_driver import find_chromium, free_port, missing

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
# The lessons under test; COURSE_NOTEBOOKS_DIR points the browser tests at another folder (for development).
NOTEBOOKS_DIR = Path(os.environ.get("COURSE_NOTEBOOKS_DIR") or ROOT / "notebooks")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
]

# JupyterLab user settings for the test server: no news / update toasts, and every
# cell stays in the DOM (no windowing) so the tests can see every output.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {"theme": "JupyterLab Light"},
}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        missing("no Chromium browser found (looked for $COURSE_CHROMIUM, chromium, /usr/bin/chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("the 'playwright' Python package is not installed")
    return path


def _copy_repo(dest: Path) -> None:
    """A stand-in for the repo: notebooks/ copied (outputs land here), the rest linked."""
    skip = {"notebooks", ".git", ".venv", "test-artifacts", "_site", ".pytest_cache", ".ruff_cache"}
    for entry in ROOT.iterdir():
        if entry.name in skip:
            continue
        (dest / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    shutil.copytree(NOTEBOOKS_DIR, dest / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))


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


@pytest.fixture(scope="session")
def lab_server(chromium_path: str) -> Iterator[LabServer]:
    """Start JupyterLab on 127.0.0.1:<free port> serving a temporary copy of the repo."""
    tmp = Path(tempfile.mkdtemp(prefix="course-lab-"))
    root = tmp / "repo"
    root.mkdir()
    _copy_repo(root)
    settings = tmp / "user-settings"
    for rel, value in LAB_SETTINGS.items():
        f = settings / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    port = free_port()
    env = dict(os.environ)  # COURSE_BLOCK_NETWORK + netguard PYTHONPATH: kernels are offline
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
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {server.url} within 120 s:\n{server.log_tail()}")
                time.sleep(0.5)
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def browser(chromium_path: str):
    """One headless Chromium for the session (each test gets its own page)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
