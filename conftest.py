"""Root pytest setup, shared by tests/ and the nbval run over notebooks/.

The network is blocked for the whole run: in this process, and -- through
``tests/netguard_site/sitecustomize.py`` on PYTHONPATH with
``COURSE_BLOCK_NETWORK=1`` -- in every kernel or server the tests start.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SITE = ROOT / "tests" / "netguard_site"

os.environ["COURSE_BLOCK_NETWORK"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("COURSE_ALLOW_DOWNLOAD", None)

from course_lib import netguard  # noqa: E402

netguard.install()
