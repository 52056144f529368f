"""facefleet configuration: the one place that reads the environment.

Each setting is declared once, as a dataclass field naming its environment variable
(:mod:`config.env`); every process builds the settings it needs once at start-up
(``Settings.from_env()`` and its siblings) and no other module reads ``os.environ``.
Celery's settings (:mod:`config.celeryconfig`) and every AWS client
(:mod:`config.aws`) are derived from the same objects. ``python -m config`` prints the
reference of every setting (docs/configuration.md).
"""
