"""Every lesson's exercises, one module per lesson (``lesson00.py``, ``lesson01.py``, ...)."""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("lesson"):
        importlib.import_module(f"{__name__}.{_info.name}")
