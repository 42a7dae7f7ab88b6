"""What the lessons need besides the model: instant-check exercises, the glossary, every lesson's exercise bank.

* :mod:`.exercises`: :class:`~.exercises.Exercise` and the catalogue (``cl.exercises.get("00.stride")``);
* :mod:`.glossary`: every term with its Chinese name, a definition and the lesson that teaches it;
* :mod:`.exercise_bank`: one module per lesson (``lesson00.py``, ``lesson01.py``, ...), discovered
  automatically: a new ``lessonNN.py`` that calls ``register(...)`` needs nothing else.
"""
