"""The Chinese edition: every translated lesson is complete, made from the English text as it is today, and its
notebook in ``notebooks/zh/`` is what ``tools/translate.py`` writes: the English code cells, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tool_scripts import load_tool

ROOT = Path(__file__).resolve().parents[1]


tr = load_tool("translate")
LESSONS = tr.lessons("zh")


def test_some_lessons_are_translated_and_each_has_its_notebook():
    assert LESSONS, "no translations/zh/*.md"
    assert sorted(p.stem for p in (ROOT / "notebooks" / "zh").glob("*.ipynb")) == LESSONS


@pytest.mark.parametrize("stem", LESSONS)
def test_a_translated_lesson_is_complete_current_and_written(stem):
    assert tr.problems(stem) == []
    written = (ROOT / "notebooks" / "zh" / f"{stem}.ipynb").read_text(encoding="utf-8")
    assert written == tr.dumps(tr.translated(stem)), "run python tools/translate.py"
    en = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    zh = json.loads(written)
    switch = zh["cells"].pop(1)                                        # the one cell the English lacks
    assert switch["id"] == tr.SWITCH_ID and "".join(switch["source"]) == tr.SWITCH["zh"]
    assert 'cl.set_language("zh")' in tr.SWITCH["zh"]
    assert [c["id"] for c in zh["cells"]] == [c["id"] for c in en["cells"]]
    code = [(a, b) for a, b in zip(en["cells"], zh["cells"]) if a["cell_type"] == "code"]
    assert code and all(a == b for a, b in code)                       # every code cell, byte for byte
    prose = [(a, b) for a, b in zip(en["cells"], zh["cells"]) if a["cell_type"] == "markdown"]
    assert all(a["source"] != b["source"] for a, b in prose)           # and every markdown cell translated
    cjk = sum(any("\u4e00" <= ch <= "\u9fff" for ch in tr.cell_text(b)) for _, b in prose)
    assert cjk == len(prose), f"{len(prose) - cjk} markdown cell(s) without a Chinese character"
    assert zh["metadata"]["course"]["language"] == "zh-CN"


def test_a_changed_missing_or_unknown_cell_is_named(tmp_path, monkeypatch):
    """The check itself, on a two-cell lesson: the English text changes after it was translated, a cell is
    added, a translated cell disappears."""
    stem = "99_demo"
    nbdir, trdir = tmp_path / "notebooks", tmp_path / "translations" / "zh"
    nbdir.mkdir()
    trdir.mkdir(parents=True)
    cells = [{"cell_type": "markdown", "id": "aaa", "metadata": {}, "source": ["# Lesson 99 — Demo"]},
             {"cell_type": "code", "id": "bbb", "metadata": {}, "source": ["x = 1"], "outputs": [],
              "execution_count": None}]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (nbdir / f"{stem}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    monkeypatch.setattr(tr, "ROOT", tmp_path)
    monkeypatch.setattr(tr, "NOTEBOOKS", nbdir)
    stub = tr.write_stub(stem)
    assert tr.read_translation(stub)["aaa"].text == "# Lesson 99 — Demo"
    stub.write_text(stub.read_text(encoding="utf-8").replace("# Lesson 99 — Demo", "# 第 99 课 — 演示"), encoding="utf-8")
    assert tr.problems(stem) == []
    out = tr.translated(stem)
    assert out["cells"][0]["source"] == ["# 第 99 课 — 演示"] and out["cells"][2] == cells[1]
    assert out["cells"][1]["id"] == tr.SWITCH_ID                        # the switch, under the title

    stub.write_text(stub.read_text(encoding="utf-8").replace("# 第 99 课 — 演示", "# Lesson 99"), encoding="utf-8")
    assert tr.problems(stem) == [f"{stem}: markdown cell 0 (id aaa, '# Lesson 99 — Demo') is not translated yet "
                                 "(no Chinese character)"]
    stub.write_text(stub.read_text(encoding="utf-8").replace("# Lesson 99", "# 第 99 课 — 演示"), encoding="utf-8")

    nb["cells"][0]["source"] = ["# Lesson 99 — A demo"]                  # the English changed
    nb["cells"].append({"cell_type": "markdown", "id": "ccc", "metadata": {}, "source": ["More."]})
    (nbdir / f"{stem}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    found = tr.problems(stem)
    assert len(found) == 2
    assert "id aaa" in found[0] and "changed since it was translated" in found[0]
    assert tr.en_hash("# Lesson 99 — A demo") in found[0]
    assert "id ccc" in found[1] and "has no translation" in found[1]

    nb["cells"] = nb["cells"][1:2]                                       # the translated cell is gone
    (nbdir / f"{stem}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    assert tr.problems(stem) == [f"{stem}: the translation has cell aaa, which the English lesson no longer has"]
