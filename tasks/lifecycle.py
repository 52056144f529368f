"""What happens around each task run, beyond Celery's defaults: the task class and the
request class every facefleet task uses.

:class:`FacefleetTask` sends the completion signal (:mod:`tasks.completion`) once
Celery has stored the result in S3. ``after_return`` runs in the process that ran the
task, after the backend write (celery.app.trace), so a woken waiter always finds the
result in S3.

:class:`FacefleetRequest` decides what the worker's main process does when a task's
process dies or times out. Celery's defaults either ack such a message (it is lost) or
requeue it with kombu's SQS requeue, which hides it for ``wait_time_seconds``, knows
nothing of the redrive policy, and never tells the client. Here, with SQS's
``ApproximateReceiveCount``:

- before the last try: the message is released for redelivery after
  ``FACEFLEET_REDELIVERY_DELAY`` seconds (no result is stored, the client keeps
  waiting);
- on the last try (``max_receives``): a clear failure is stored for the client and
  signalled, and the message is released once more so SQS moves it to the
  dead-letter queue on its next receive.

Releasing = kombu's reject without requeue (which frees the prefetch slot and, because
the queue has a redrive policy, leaves the message in SQS) followed by
ChangeMessageVisibility to the delay.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from botocore.exceptions import BotoCoreError, ClientError
from celery import Task
from celery.exceptions import WorkerLostError
from celery.worker import state as worker_state
from celery.worker.request import Request, task_ready

from tasks import visibility
from tasks.completion import REPLY_HEADER, notify
from tasks.errors import PoisonMessage
from tasks.state import main_process_sqs, state

log = logging.getLogger(__name__)


def receive_count(delivery_info: dict[str, Any]) -> int:
    """How many times SQS has delivered this message (1 on the first try)."""
    sqs_message = delivery_info.get("sqs_message") or {}
    attributes = sqs_message.get("Attributes") or {}
    try:
        return max(1, int(attributes.get("ApproximateReceiveCount", 1)))
    except (TypeError, ValueError):
        return 1


class FacefleetRequest(Request):  # type: ignore[misc]
    """A task request whose lost or timed-out runs are retried through SQS, boundedly."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        """Hard time limit: the process was killed; retry or dead-letter."""
        if soft or worker_state.should_terminate or not self.task.acks_late:
            super().on_timeout(soft, timeout)
            return
        task_ready(self)
        self._lost(f"took longer than the {timeout:g} s time limit")

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> None:
        """A lost process (killed, crashed) is retried or dead-lettered; others as Celery."""
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if (isinstance(exc, WorkerLostError) and self.task.acks_late
                and not worker_state.should_terminate and not self._success_was_stored()):
            task_ready(self)
            self._lost(f"killed the process running it ({exc})")
            return
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    # ---- helpers -----------------------------------------------------------------

    def _lost(self, what: str) -> None:
        settings = self.task.app.facefleet_settings
        attempt = receive_count(self._message.delivery_info)
        if attempt >= settings.max_receives:
            message = (f"The image {what} on each of its {attempt} tries, so it was set "
                       f"aside in the dead-letter queue {settings.dead_letter_queue!r}. "
                       "Check the image (size, content) and send it again.")
            log.error("task %s[%s] %s; try %d of %d: dead-lettered", self.name, self.id,
                      what, attempt, settings.max_receives)
            self.task.backend.mark_as_failure(self.id, PoisonMessage(message),
                                              request=self._context, store_result=True)
            notify(main_process_sqs(settings), self._request_dict.get(REPLY_HEADER),
                   self.id, "FAILURE",
                   prefix=self.task.app.facefleet_serving.reply_queue_prefix)
        else:
            log.warning("task %s[%s] %s; try %d of %d: redelivering", self.name, self.id,
                        what, attempt, settings.max_receives)
        self._release()

    def _release(self) -> None:
        info = self._message.delivery_info
        sqs_message = info.get("sqs_message") or {}
        queue_url, receipt = info.get("sqs_queue"), sqs_message.get("ReceiptHandle")
        # With the queue's redrive policy kombu leaves a rejected message in SQS.
        self.reject(requeue=False)
        if not (queue_url and receipt):
            return
        delay = self.task.app.facefleet_serving.redelivery_delay
        try:
            # Under the keeper's lock: no extension may land after this and hide the
            # message again (tasks/visibility.py).
            with visibility.LOCK:
                main_process_sqs(self.task.app.facefleet_settings).change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=delay)
        except (BotoCoreError, ClientError) as exc:
            # It still comes back, after the full visibility timeout.
            log.warning("could not shorten the redelivery of %s: %s", self.id, exc)


class FacefleetTask(Task):  # type: ignore[misc]
    """Sends the completion signal once Celery has stored the result in S3."""

    Request = FacefleetRequest

    def after_return(self, status: str, retval: Any, task_id: str, args: Any,
                     kwargs: Any, einfo: Any) -> None:
        """Notify the reply queue named in the message headers, if any."""
        reply_to = getattr(self.request, REPLY_HEADER, None)
        if reply_to:
            # On SUCCESS ``retval`` is what mark_as_done just wrote to S3: the signal
            # carries a copy so the waiter need not read it back.
            notify(state().sqs, reply_to, task_id, status,
                   retval if status == "SUCCESS" else None,
                   prefix=self.app.facefleet_serving.reply_queue_prefix)
