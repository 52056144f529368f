"""Flower's settings, read by ``celery -A tasks flower`` started from the repository root
(Flower loads ./flowerconfig.py by default; command-line options still win).

Flower listens on every interface unless told otherwise, and with
``FLOWER_UNAUTHENTICATED_API=true`` its API can shut workers down: keep it on loopback.
Reach it from elsewhere through an SSH tunnel, or bind it wider only together with
``--basic-auth=user:password`` (or ``--auth``) behind TLS.
"""

address = "127.0.0.1"
