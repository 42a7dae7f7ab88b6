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

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_driver import LabServer, find_chromium, missing, running_lab

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


@pytest.fixture(scope="session")
def lab_server(chromium_path: str) -> Iterator[LabServer]:
    """Start JupyterLab on 127.0.0.1:<free port> serving a temporary copy of the repo."""
    tmp = Path(tempfile.mkdtemp(prefix="course-lab-"))
    root = tmp / "repo"
    root.mkdir()
    _copy_repo(root)
    try:
        # COURSE_BLOCK_NETWORK + the netguard PYTHONPATH are in this process's environment: kernels are offline
        with running_lab(root, tmp) as server:
            yield server
    except RuntimeError as err:
        pytest.fail(str(err))
    finally:
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
