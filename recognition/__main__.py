"""``python -m recognition``: see :mod:`recognition.cli`."""

from __future__ import annotations

import sys

from recognition.cli import main

if __name__ == "__main__":
    sys.exit(main())
