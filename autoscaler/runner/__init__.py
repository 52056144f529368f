"""The embedded runner: a second process beside the controller that turns each instance
``running`` in the embedded EC2 into a real Celery worker on this machine.

``python -m autoscaler.runner`` polls the embedded endpoint's EC2 API every
``FACEFLEET_RUNNER_POLL_SECONDS`` for instances with our role tag, and keeps one worker
per running instance (:mod:`autoscaler.runner.sync`), started by a launcher
(:mod:`autoscaler.runner.launchers`: forked from a process with the model preloaded,
or a command per instance). A worker is ended like an instance's shutdown ends it:
the same drain (:mod:`tasks.drain`) an instance's worker unit runs, then a warm
shutdown. Workers die with the runner, so a restarted runner simply starts afresh from
EC2's state. So the embedded stack drives the exact EC2 code path the controller uses
on AWS.
"""
