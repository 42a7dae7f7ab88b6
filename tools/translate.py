"""The Chinese edition: one source of truth for code, a translation file per lesson for the prose.

    .venv/bin/python tools/translate.py                  # write notebooks/zh/ from every translation file
    .venv/bin/python tools/translate.py --check          # fail on a missing, stale or unwritten translation
    .venv/bin/python tools/translate.py --stub 02_backbone_building_blocks   # start translating a lesson
    .venv/bin/python tools/translate.py --strings        # add the library's untranslated texts to its catalog

A translation file, ``translations/zh/<lesson>.md``, holds the Chinese text of every markdown
cell of the English notebook ``notebooks/<lesson>.ipynb``, each under a marker naming the
cell's id and a hash of the English text it translates::

    <!-- cell 3f1c0a2b en 5a6b7c8d9e0f -->
    # 第 00 课 — 全局：眼睛、大脑、判断
    ...

``notebooks/zh/<lesson>.ipynb`` is *written* from the two: the English notebook with each
markdown cell's text replaced by its translation, every code cell byte for byte the same
(so the Chinese lesson computes, asserts and shows exactly what the English one does).
When an English cell changes, its hash no longer matches and ``--check`` (and the test
suite, ``tests/test_translations.py``) names the cell to translate again; a cell added to
the English lesson is named as missing.  ``--stub`` writes a file with every cell's marker
and its English text, to be replaced by the translation.

Each Chinese notebook starts with one cell the English one lacks, :data:`SWITCH`: it turns
the library's own words to Chinese (``cl.set_language("zh")``).  Those words -- exercise
questions, hints, the checker's lines, the glossary, widget labels, figure titles -- are
translated in ``course_lib/locale/zh/*.json``, keyed by the English text
(:mod:`course_lib.language`); :func:`learner_texts` lists every text the library shows a
learner, and ``--strings`` adds those without a translation to the catalog, empty, for a
translator to fill.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LANGUAGES = {"zh": "zh-CN"}  # the folder name under translations/ and notebooks/, and the language tag
CJK = re.compile(r"[\u4e00-\u9fff]")
MARKER = re.compile(r"^<!-- cell (\S+) en ([0-9a-f]{12}) -->$", re.M)
HEADER = ("<!-- The {tag} text of every markdown cell of notebooks/{stem}.ipynb, each under the marker of its cell\n"
          "     (the cell id, and a hash of the English text translated). Edit the text under a marker, then run\n"
          "     python tools/translate.py to write notebooks/{lang}/{stem}.ipynb. -->\n")


#: The code cell each Chinese notebook starts with, under its title (the only cell the English lesson lacks).
SWITCH = {"zh": "import course_lib as cl\n\ncl.set_language(\"zh\")   # 练习、提示、控件与图中文字都用中文（英文版：\"en\"）"}
SWITCH_ID = "language-switch"
LIBRARY = ROOT / "course_lib"


def en_hash(text: str) -> str:
    """The first 12 hex digits of the English text's sha256: what a translation was made from."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def cell_text(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


@dataclass
class Piece:
    """One translated cell: the English hash it was made from and its text."""

    en: str
    text: str


def read_translation(path: Path) -> dict[str, Piece]:
    """``{cell id: Piece}`` from a translation file (the text under each marker, up to the next one)."""
    raw = path.read_text(encoding="utf-8")
    marks = list(MARKER.finditer(raw))
    pieces: dict[str, Piece] = {}
    for m, nxt in zip(marks, marks[1:] + [None]):
        body = raw[m.end():nxt.start() if nxt else len(raw)]
        if m.group(1) in pieces:
            raise ValueError(f"{path.name}: cell {m.group(1)} is translated twice")
        pieces[m.group(1)] = Piece(m.group(2), body.strip("\n"))
    return pieces


def write_stub(stem: str, lang: str = "zh") -> Path:
    """A translation file for ``notebooks/<stem>.ipynb``: every markdown cell's marker and its English text."""
    nb = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text(encoding="utf-8"))
    parts = [HEADER.format(tag=LANGUAGES[lang], stem=stem, lang=lang)]
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            text = cell_text(cell)
            parts.append(f"<!-- cell {cell['id']} en {en_hash(text)} -->\n{text}\n")
    path = ROOT / "translations" / lang / f"{stem}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def problems(stem: str, lang: str = "zh") -> list[str]:
    """What is wrong with a lesson's translation: cells missing, stale (the English changed) or unknown."""
    nb = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text(encoding="utf-8"))
    pieces = read_translation(ROOT / "translations" / lang / f"{stem}.md")
    out, ids = [], set()
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        ids.add(cell["id"])
        first = cell_text(cell).strip().splitlines()[:1]
        where = f"{stem}: markdown cell {i} (id {cell['id']}, {first[0][:50] if first else ''!r})"
        piece = pieces.get(cell["id"])
        if piece is None:
            out.append(f"{where} has no translation")
        elif piece.en != en_hash(cell_text(cell)):
            out.append(f"{where} changed since it was translated: translate it again, then give its marker "
                       f"the hash {en_hash(cell_text(cell))}")
        elif not piece.text.strip():
            out.append(f"{where} has an empty translation")
        elif lang == "zh" and not CJK.search(piece.text):
            out.append(f"{where} is not translated yet (no Chinese character)")
    out += [f"{stem}: the translation has cell {c}, which the English lesson no longer has" for c in pieces
            if c not in ids]
    return out


def translated(stem: str, lang: str = "zh") -> dict:
    """The notebook ``notebooks/<lang>/<stem>.ipynb`` as it must be: the English one with its prose translated."""
    nb = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text(encoding="utf-8"))
    pieces = read_translation(ROOT / "translations" / lang / f"{stem}.md")
    out = copy.deepcopy(nb)
    for cell in out["cells"]:
        if cell["cell_type"] == "markdown" and cell["id"] in pieces:
            cell["source"] = pieces[cell["id"]].text.splitlines(keepends=True)
    first = 1 if out["cells"] and out["cells"][0]["cell_type"] == "markdown" else 0   # after the title
    out["cells"].insert(first, {"cell_type": "code", "execution_count": None, "id": SWITCH_ID, "metadata": {},
                            "outputs": [], "source": SWITCH[lang].splitlines(keepends=True)})
    out["metadata"]["course"] = {"language": LANGUAGES[lang], "translated_from": f"../{stem}.ipynb",
                                 "written_by": "tools/translate.py (edit translations/, not this file)"}
    return out


def literal_texts(folder: Path = LIBRARY) -> set[str]:
    """Every string literal the library passes to ``tr(...)`` as its text (found by parsing, not by running)."""
    found: set[str] = set()
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "tr"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.add(node.args[0].value)
    return found


def learner_texts() -> dict[str, set[str]]:
    """Every English text the library shows a learner, by the catalog file that translates it:
    ``exercises`` (questions, hints, explanations), ``glossary`` (meanings), ``library`` (the texts the code
    passes to ``tr``, and lesson 09's audit of the source text)."""
    sys.path.insert(0, str(ROOT))
    from course_lib.lessons import exercises, glossary
    from course_lib.zoo import source_audit

    ex = {t for e in exercises.all_exercises() for t in (e.question, e.explanation, *e.hints) if t}
    audit = {t for c in source_audit.CLAIMS for t in (c.claim, c.verdict, c.truth)}
    return {"exercises": ex, "glossary": {t.definition for t in glossary.TERMS}, "library": literal_texts() | audit}


def string_problems(lang: str = "zh") -> list[str]:
    """Texts the library shows with no translation, entries whose English is gone, and fields that differ."""
    out = []
    for name, texts in learner_texts().items():
        path = LIBRARY / "locale" / lang / f"{name}.json"
        have = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        rel = path.relative_to(ROOT)
        out += [f"{rel}: no translation of {en!r}" for en in sorted(texts) if not have.get(en, "").strip()]
        out += [f"{rel}: {en!r} is no longer shown by the library (its English changed?)" for en in have
                if en not in texts]
        fields = re.compile(r"{(\w*)[^{}]*}")
        out += [f"{rel}: {en!r} and its translation have different {{fields}}" for en, text in have.items()
                if en in texts and text and sorted(fields.findall(en)) != sorted(fields.findall(text))]
    return out


def add_missing_strings(lang: str = "zh") -> int:
    """Add every untranslated learner text to its catalog file with an empty translation; the number added."""
    added = 0
    for name, texts in learner_texts().items():
        path = LIBRARY / "locale" / lang / f"{name}.json"
        have = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        new = {en: "" for en in sorted(texts) if en not in have}
        if new:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**have, **new}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            added += len(new)
    return added


def dumps(nb: dict) -> str:
    """A notebook as the repository stores it (one-space indent, UTF-8 kept, a final newline)."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def lessons(lang: str = "zh") -> list[str]:
    """The lessons that have a translation file."""
    return sorted(p.stem for p in (ROOT / "translations" / lang).glob("[0-9]*.md"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; fail on any problem or an outdated notebook")
    ap.add_argument("--stub", metavar="LESSON", help="write translations/zh/LESSON.md to start a translation")
    ap.add_argument("--strings", action="store_true",
                    help="add the library's untranslated texts to course_lib/locale/LANG/*.json, empty")
    ap.add_argument("--lang", default="zh", choices=sorted(LANGUAGES))
    a = ap.parse_args(argv)
    if a.stub:
        print(f"wrote {write_stub(a.stub, a.lang).relative_to(ROOT)}: replace each cell's English text")
        return 0
    if a.strings:
        print(f"added {add_missing_strings(a.lang)} texts to course_lib/locale/{a.lang}/: translate each empty one")
    bad: list[str] = string_problems(a.lang)
    for stem in lessons(a.lang):
        found = problems(stem, a.lang)
        bad += found
        target = NOTEBOOKS / a.lang / f"{stem}.ipynb"
        if found:
            continue
        text = dumps(translated(stem, a.lang))
        if a.check:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                bad.append(f"{target.relative_to(ROOT)} is out of date: run python tools/translate.py")
        elif not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(ROOT)}")
    for p in bad:
        print(p, file=sys.stderr)
    english = sorted(p.stem for p in NOTEBOOKS.glob("[0-9]*.ipynb"))
    done = [s for s in lessons(a.lang) if not problems(s, a.lang)]
    print(f"{len(done)} of {len(english)} lessons translated ({a.lang}); not yet: "
          f"{', '.join(s.split('_')[0] for s in english if s not in done) or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
