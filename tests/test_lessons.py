"""course_lib.lessons: the exercise catalogue (found without registration), instant checks, the glossary."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import course_lib as cl
from course_lib.lessons import exercise_bank, exercises, glossary
from course_lib.lessons.exercises import Exercise

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_cl_exercises_is_the_lessons_module():
    assert cl.exercises is exercises and cl.glossary is glossary


def test_every_lesson_has_a_bank_module_and_every_module_registers():
    modules = sorted(m.name for m in pkgutil.iter_modules(exercise_bank.__path__) if m.name.startswith("lesson"))
    notebooks = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert modules == [f"lesson{nb.name[:2]}" for nb in notebooks]
    lessons = {ex.id.split(".")[0] for ex in exercises.all_exercises()}
    assert lessons == {m.removeprefix("lesson") for m in modules}  # every module registered something
    for lesson in lessons:
        assert len(exercises.for_lesson(lesson)) >= 3, lesson


def test_a_new_lesson_module_needs_no_registration(tmp_path):
    """Dropping ``lessonNN.py`` into the bank is enough: the package finds it by listing its own folder."""
    pkg = tmp_path / "course_lib"
    shutil.copytree(Path(exercises.__file__).parent, pkg / "lessons", ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "__init__.py").write_text("")
    (pkg / "lessons" / "exercise_bank" / "lesson99.py").write_text(textwrap.dedent("""
        from ..exercises import Exercise, register

        register(Exercise(id="99.new", question="1 + 1?", answer=2))
    """))
    code = ("from course_lib.lessons import exercises as e; "
            "print(e.get('99.new').is_correct(2), len(e.for_lesson('00')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", str(len(exercises.for_lesson("00")))]


def test_every_reference_answer_passes_and_a_wrong_one_fails():
    for ex in exercises.all_exercises():
        assert ex.is_correct(ex.solution()), ex.id
        assert not ex.is_correct("certainly not the answer"), ex.id


def test_check_shows_the_question_once_and_a_verdict_and_never_raises(capsys):
    ex = Exercise(id="xx.demo", question="How many cells is C5 of a 224 image?", answer=7,
                  hints=["stride 32", "224 / 32"], explanation="224 / 32 = 7.")
    blank = ex.check(None)
    assert not blank and blank == False  # noqa: E712  (a verdict compares like the bool it stands for)
    assert "✗ Not answered yet" in repr(blank) and "Hint: stride 32" in repr(blank)
    wrong, again, right = ex.check(8), ex.check(9), ex.check(7)
    assert not wrong and "✗ Not quite: 8. Hint: stride 32" in str(wrong)
    assert not again and "Hint: 224 / 32" in str(again)            # the next hint
    assert right and right == True and "✓ Correct! 224 / 32 = 7." in repr(right)  # noqa: E712
    for verdict in (blank, wrong, right):                           # the question once, then one ✓ / ✗ line
        text = repr(verdict)
        assert text.count(ex.question) == 1 and text.splitlines()[0] == "[xx.demo] " + ex.question
        assert len(text.splitlines()) == 2 and "False" not in text
    assert capsys.readouterr().out == ""    # nothing printed: a notebook shows the verdict once, as the result


def test_answers_compare_as_a_learner_means_them():
    assert Exercise("a", "?", answer=0.5, rel_tol=0.01).is_correct(0.502)
    assert not Exercise("a", "?", answer=0.5).is_correct(0.502)
    assert Exercise("a", "?", answer=(7, 7)).is_correct([7, 7])
    assert Exercise("a", "?", answer="Head").is_correct("  head ")
    assert not Exercise("a", "?", answer=True).is_correct(1.0 + 1)
    broken = Exercise("a", "?", answer=1, compare=lambda v, ref: v["key"] == ref)
    assert broken.is_correct(3) is False  # a checker that raises counts as wrong, not as a crash


def test_unknown_id_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"no exercise '00\.strid'.*00\.stride"):
        exercises.get("00.strid")
    with pytest.raises(KeyError, match="registered twice"):
        exercises.register(exercises.get("00.stride"))


def test_glossary_terms_are_unique_and_point_at_lessons():
    assert len({t.english for t in glossary.TERMS}) == len(glossary.TERMS)
    for term in glossary.TERMS:
        path = glossary.lesson_notebook(term.lesson, NOTEBOOKS)
        assert path is not None and path.name.startswith(term.lesson + "_"), term
    table = glossary.table_markdown()
    assert table.count("\n") == len(glossary.TERMS) + 1 and "| receptive field | 感受野 |" in table
    assert "| backbone | 主干网络 / 骨干网络 |" in table  # other Chinese names are listed with the main one


def test_lesson08_compose_is_checked_by_building_the_config():
    ex = exercises.get("08.compose_stride16")
    good = {"backbone": {"name": "tiny_cnn"},
            "neck": {"name": "fpn", "in_keys": ("C4", "C5"), "out_channels": 32},
            "head": {"name": "detection", "num_classes": 3, "width": 48}}   # extra head options are fine
    assert ex.is_correct(good)
    assert not ex.is_correct({**good, "neck": {"name": "fpn", "out_channels": 32}})      # reads C3: a stride-8 map
    assert not ex.is_correct({**good, "neck": {"name": "fpn", "in_keys": ["C4", "C5"]}})  # 256 channels
    assert not ex.is_correct({**good, "head": {"name": "detection", "num_classes": 4}})
    assert not ex.is_correct({**good, "neck": {"name": "pan", "in_keys": ["C4", "C5"], "out_channels": 32}})
    assert not ex.is_correct({**good, "neck": {"name": "fpn", "in_keys": ["C2", "C4"], "out_channels": 32}})


def test_lesson08_exercises_are_not_answered_in_the_lesson():
    ids = {ex.id for ex in exercises.for_lesson("08")}
    assert "08.c5_points" not in ids and {"08.points_fpn", "08.compose_stride16"} <= ids
    assert exercises.get("08.points_fpn").is_correct((16 ** 2 + 8 ** 2 + 4 ** 2, 16))
    assert not exercises.get("08.points_fpn").is_correct(16)


def test_lesson00_stride_answer_is_the_real_c5_grid_and_not_in_the_lesson():
    import torch

    ex = exercises.get("00.stride")
    backbone = cl.backbones.build("mobilenet_v2").eval()
    with torch.no_grad():
        c5 = backbone(torch.zeros(1, 3, 250, 400))["C5"]
    assert ex.is_correct(tuple(c5.shape[-2:])) and ex.answer == (8, 13)
    assert not ex.is_correct((250 // 32, 400 // 32))          # floor division: the tempting wrong answer
    lesson = (NOTEBOOKS / "00_the_big_picture.ipynb").read_text(encoding="utf-8")
    assert "8, 13" not in lesson and "8x13" not in lesson     # the lesson does not print the answer


@pytest.mark.parametrize("lesson", sorted({t.lesson for t in glossary.TERMS}))
def test_every_glossary_name_english_and_chinese_appears_in_its_lesson(lesson):
    terms = [t for t in glossary.TERMS if t.lesson == lesson]
    assert glossary.missing_from_lessons(terms, NOTEBOOKS) == []


def test_the_glossary_check_finds_a_missing_chinese_name(tmp_path):
    (tmp_path / "00_demo.ipynb").write_text(
        '{"cells": [{"cell_type": "markdown", "source": ["the backbone (主干网络)"]}]}', encoding="utf-8")
    term = glossary.Term("backbone", "主干网络", "the eye", "00", also=("骨干网络",))
    assert glossary.missing_from_lessons([term], tmp_path) == [("00", "backbone", "骨干网络")]


def test_the_multi_head_exercise_is_checked_by_building_the_config(capsys):
    import copy

    from course_lib.lessons.exercise_bank.lesson10 import DETECTION_ONLY

    ex = exercises.get("10.add_segmentation")
    good = copy.deepcopy(DETECTION_ONLY)
    good["heads"]["segmentation"] = {"name": "segmentation", "num_classes": 4}
    assert ex.is_correct(good)
    assert not ex.is_correct(DETECTION_ONLY)                                      # no segmentation head yet
    wrong_classes = copy.deepcopy(good)
    wrong_classes["heads"]["segmentation"]["num_classes"] = 3                     # forgot the background
    assert not ex.is_correct(wrong_classes)
    other_neck = {**good, "neck": {"name": "fpn", "out_channels": 32}}            # not the same neck
    assert not ex.is_correct(other_neck)
    single = {"backbone": good["backbone"], "neck": good["neck"], "head": {"name": "segmentation", "num_classes": 4}}
    assert not ex.is_correct(single)                                              # one head, not two
    verdict = ex.check(single)
    assert not verdict and "Hint:" in str(verdict)

