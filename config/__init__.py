"""facefleet configuration: the one place that reads the environment.

Every process builds its typed, validated settings from here once at start-up
(`Settings.from_env()`); no other module reads ``os.environ``. Celery's own settings
live in :mod:`config.celeryconfig` and are derived from the same object.
"""
