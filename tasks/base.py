"""The base class of facefleet's tasks: completion signal after the result is stored."""

from __future__ import annotations

from typing import Any

from celery import Task

from tasks.completion import REPLY_HEADER, notify


class FacefleetTask(Task):
    """Sends the completion signal once Celery has stored the result in S3.

    ``after_return`` runs in the process that ran the task, after the backend write
    (celery.app.trace), so a woken waiter always finds the result in S3.
    """

    Request = "tasks.requests:FacefleetRequest"

    def after_return(self, status: str, retval: Any, task_id: str, args: Any,
                     kwargs: Any, einfo: Any) -> None:
        """Notify the reply queue named in the message headers, if any."""
        from tasks.worker import state

        reply_to = getattr(self.request, REPLY_HEADER, None)
        if reply_to:
            # On SUCCESS ``retval`` is what mark_as_done just wrote to S3: the signal
            # carries a copy so the waiter need not read it back.
            notify(state().sqs, reply_to, task_id, status,
                   retval if status == "SUCCESS" else None)
