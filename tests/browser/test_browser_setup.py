"""The browser tests' own rules, checked without a browser.

A learner without Chromium sees a skip with a reason; CI (``CI=true``) fails
instead, so the browser tests can never silently stop running there.  The
saved-notebook report the browser test relies on counts errors correctly.
"""

from __future__ import annotations

import socket

import lab_driver as lab
import pytest


def test_missing_browser_skips_for_a_learner(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium.*install Chromium"):
        lab.missing("no Chromium browser found")


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_missing_browser_fails_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        lab.missing("no Chromium browser found")


def test_find_chromium_honours_override(monkeypatch, tmp_path):
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("COURSE_CHROMIUM", str(fake))
    assert lab.find_chromium() == str(fake)


def test_free_port_is_free_and_local():
    port = lab.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))  # nobody holds it


def test_report_counts_errors_and_unexecuted_cells():
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": "# hi"},
            {"cell_type": "code", "execution_count": 1, "outputs": []},
            {"cell_type": "code", "execution_count": 2,
             "outputs": [{"output_type": "stream", "name": "stderr", "text": "a warning"},
                         {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []}]},
            {"cell_type": "code", "execution_count": None, "outputs": []},
        ]
    }
    rep = lab.report(nb)
    assert (rep.code_cells, rep.executed) == (3, 2)
    assert rep.errors == ["cell 2: ValueError: bad"]  # a warning on stderr is not an error
