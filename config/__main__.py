"""``python -m config``: print the reference of every setting (docs/configuration.md)."""

from __future__ import annotations

import sys

from config.reference import document

if __name__ == "__main__":
    sys.stdout.write(document())
