"""Logging of the autoscaler's processes (the controller and the embedded runner)."""

from __future__ import annotations

import logging

from config import redaction

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
#: Libraries that log every request at INFO: their lines would drown the decisions.
NOISY = ("botocore", "boto3", "urllib3")


def setup(verbose: bool = False) -> None:
    """One line format on stderr; DEBUG when ``verbose`` (the controller logs every tick)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT)
    redaction.install()  # no secret or request signature in any line (botocore's debug)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
