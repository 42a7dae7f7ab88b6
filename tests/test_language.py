"""One switch for the language a learner reads (``cl.set_language``): what it changes, what it leaves, and that
every text the library shows a learner has its Chinese translation, made from the English as it is today."""

from __future__ import annotations

import pytest
from tool_scripts import load_tool

import course_lib as cl
from course_lib import language
from course_lib.language import tr
from course_lib.lessons import exercises, glossary
from course_lib.zoo import source_audit


@pytest.fixture
def zh():
    cl.set_language("zh")
    yield
    cl.set_language("en")


def test_english_is_the_default_and_a_language_is_chosen_by_name():
    assert cl.get_language() == "en"
    assert tr("✓ Correct! {explanation}", explanation="x") == "✓ Correct! x"
    for name in ("zh", "zh-CN", "zh_cn"):
        assert cl.set_language(name) == "zh" and cl.get_language() == "zh"
    assert cl.set_language("en") == "en"
    with pytest.raises(ValueError, match="choose one of en, zh"):
        cl.set_language("fr")
    assert cl.get_language() == "en"                      # a bad name changes nothing


def test_tr_translates_first_then_fills_fields_and_falls_back_to_english(zh):
    assert tr("✓ Correct! {explanation}", explanation="x") == "✓ 正确！x"
    assert tr("no such text {n}", n=3) == "no such text 3"


def test_the_checker_speaks_the_learners_language(zh):
    ex = exercises.get("01.stage_shape")
    blank = ex.check(None)
    assert not blank and blank.line.startswith("✗ 还没有作答") and "提示：" in blank.line
    assert blank.question.startswith("[01.stage_shape] ") and language.catalog("zh")[ex.question] in blank.question
    wrong = ex.check((1, 1024, 10, 15))
    assert not wrong and wrong.line.startswith("✗ 不太对：(1, 1024, 10, 15)。提示：")
    right = ex.check((1, 1024, 20, 30))
    assert right and right.line == "✓ 正确！" + language.catalog("zh")[ex.explanation]
    cl.set_language("en")
    assert ex.check((1, 1024, 20, 30)).line.startswith("✓ Correct! (1, 1024, 20, 30)")


def test_the_glossary_and_the_audit_follow_the_language(zh):
    meaning = language.catalog("zh")[glossary.TERMS[0].definition]
    assert meaning in glossary.table_markdown() and "| 含义 |" in glossary.table_markdown()
    table = source_audit.audit_table()
    assert "| 原文 |" in table and "**错误**" in table and source_audit.CLAIMS[0].quote in table
    cl.set_language("en")
    assert glossary.TERMS[0].definition in glossary.table_markdown() and "**wrong**" in source_audit.audit_table()


def test_every_text_a_learner_reads_is_translated_from_the_english_of_today():
    """No text without its translation, no translation whose English the library no longer shows, no
    translation that drops or renames a ``{field}`` (``python tools/translate.py --strings`` adds what is new)."""
    translate = load_tool("translate")
    texts = translate.learner_texts()
    assert len(texts["exercises"]) > 150 and len(texts["glossary"]) == len(glossary.TERMS)
    assert "✗ Not quite: {shown}. Hint: {hint}" in texts["library"]      # found in the code by parsing it
    assert translate.string_problems("zh") == []


def test_a_stale_or_missing_or_misfielded_entry_is_named(tmp_path, monkeypatch):
    translate = load_tool("translate")
    monkeypatch.setattr(translate, "learner_texts", lambda: {"library": {"Stage:", "{n} boxes", "Level:"}})
    monkeypatch.setattr(translate, "LIBRARY", tmp_path)
    monkeypatch.setattr(translate, "ROOT", tmp_path)
    (tmp_path / "locale" / "zh").mkdir(parents=True)
    (tmp_path / "locale" / "zh" / "library.json").write_text(
        '{"Stage:": "阶段：", "{n} boxes": "{m} 个框", "Old text": "旧"}', encoding="utf-8")
    found = translate.string_problems("zh")
    assert found == ["locale/zh/library.json: no translation of 'Level:'",
                     "locale/zh/library.json: 'Old text' is no longer shown by the library (its English changed?)",
                     "locale/zh/library.json: '{n} boxes' and its translation have different {fields}"]
    assert translate.add_missing_strings("zh") == 1
    assert "Level:" in (tmp_path / "locale" / "zh" / "library.json").read_text(encoding="utf-8")
