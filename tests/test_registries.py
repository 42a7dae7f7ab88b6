"""A new backbone, neck or head is one new file: the package imports every module of its folder."""

from __future__ import annotations

import pkgutil
import sys
import textwrap

import pytest

import course_lib as cl
from course_lib.contract import Registry, import_modules


@pytest.mark.parametrize("package", [cl.backbones, cl.necks, cl.heads], ids=lambda p: p.__name__)
def test_every_module_of_the_folder_is_imported(package):
    for info in pkgutil.iter_modules(package.__path__):
        assert f"{package.__name__}.{info.name}" in sys.modules, info.name


def test_a_dropped_in_module_registers_itself(tmp_path, monkeypatch):
    pkg = tmp_path / "my_parts"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from course_lib.contract import Registry, import_modules

        PARTS = Registry("part")
        import_modules(__name__, __path__)
    """))
    (pkg / "widget_a.py").write_text("from . import PARTS\n\n@PARTS.register('a')\ndef build_a():\n    return 'a'\n")
    (pkg / "zeta.py").write_text("from . import PARTS\n\n@PARTS.register('z')\ndef build_z():\n    return 'z'\n")
    (pkg / "_private.py").write_text("raise RuntimeError('modules starting with _ are skipped')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_parts

    assert my_parts.PARTS.names() == ["a", "z"] and my_parts.PARTS.get("z")() == "z"
    assert import_modules("my_parts", my_parts.__path__) == ["widget_a", "zeta"]  # already imported: no-op
    monkeypatch.delitem(sys.modules, "my_parts")


def test_registry_names_the_close_match():
    reg = Registry("thing")
    reg.register("resnet18")(lambda: None)
    with pytest.raises(KeyError, match=r"unknown thing 'resnet19'\. Did you mean 'resnet18'"):
        reg.get("resnet19")
    with pytest.raises(KeyError, match="registered twice"):
        reg.register("resnet18")(lambda: None)
