"""One switch for the language a learner reads: ``cl.set_language("zh")`` (English is the default).

Every Chinese lesson (``notebooks/zh/``) starts with that switch.  After it, what the library says *to a learner*
is Chinese: exercise questions, hints and the checker's ✓ / ✗ lines, the glossary's meanings, widget labels and
explorer captions, figure titles that carry words, lesson 09's audit table.  Error messages (``load_image``, the
stage contract, bad configs) stay English: they are read next to tracebacks and code, and one set of them keeps
the library from forking.

How it works (gettext's idea, kept small): the English text itself is the key.  Code says ``tr("Stage:")`` or
``tr("{n} boxes kept", n=k)``; :func:`tr` looks the text up in the catalog of the current language
(``course_lib/locale/<lang>/*.json``, ``{english: translation}``) and fills the ``{fields}`` after translating,
so a translation may move them.  Text with no entry is shown in English.  When the English of a key changes,
its old entry no longer matches anything: ``tests/test_language.py`` names every learner-facing text that has no
translation, and every entry whose English is gone (``python tools/translate.py --strings`` lists them too).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

#: The languages a learner can choose, by the name :func:`set_language` takes.
LANGUAGES: dict[str, str] = {"en": "English", "zh": "简体中文"}
LOCALE = Path(__file__).with_name("locale")

_current = ["en"]


def set_language(lang: str) -> str:
    """Choose the language the course speaks to the learner in: ``"en"`` (default) or ``"zh"``; returns it.

    Call it first in a lesson (the Chinese lessons do): widgets read it when they are built.
    """
    key = str(lang).lower().replace("_", "-")
    key = {"zh-cn": "zh", "zh-hans": "zh", "cn": "zh", "english": "en", "en-us": "en"}.get(key, key)
    if key not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}")
    _current[0] = key
    return key


def get_language() -> str:
    """The language chosen with :func:`set_language` (``"en"`` until then)."""
    return _current[0]


@cache
def catalog(lang: str) -> dict[str, str]:
    """``{english: translation}`` for ``lang``: every ``locale/<lang>/*.json`` merged (English: empty)."""
    merged: dict[str, str] = {}
    folder = LOCALE / lang
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        for en, text in json.loads(path.read_text(encoding="utf-8")).items():
            if en in merged and merged[en] != text:
                raise ValueError(f"{path.name}: {en!r} is translated twice, differently")
            merged[en] = text
    return merged


def tr(text: str, /, **fields: Any) -> str:
    """``text`` in the learner's language, with ``{name}`` fields filled from ``fields`` (after translating).

    >>> tr("{n} boxes", n=3)
    '3 boxes'
    """
    lang = _current[0]
    out = catalog(lang).get(text) or text if lang != "en" else text
    return out.format(**fields) if fields else out

