"""Flower started from the repository root listens on loopback only (flowerconfig.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.webapp.stack import ROOT

# Flower's own option parsing, as `celery flower` runs it, in a child process (tornado's
# options are process globals).
PROBE = """
from flower.command import apply_options
from tornado.options import options
apply_options("flower", ["--port=5555"])
print(repr(options.address))
"""


def test_flower_binds_loopback_by_default() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == "'127.0.0.1'"
