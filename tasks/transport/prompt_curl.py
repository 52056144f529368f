"""Prompt asynchronous SQS polls: libcurl's timer honoured in milliseconds.

kombu's pycurl client hands libcurl's timer requests (milliseconds) to the event loop's
``call_later`` (seconds): when libcurl asks to be woken in 1 ms to send the next
ReceiveMessage, it is woken a second later, or at the client's 1 s housekeeping tick.
A worker that just finished a task therefore has no long poll in flight for up to a
second, and every request that arrives meanwhile waits for the tick.

:class:`PromptCurlClient` converts the unit; :func:`install_prompt_client` puts it on
the worker's event loop before the SQS channel makes its asynchronous connection.
Publishing (web tier) never takes this path: it uses boto3 synchronously.
"""

from __future__ import annotations

from typing import Any

from kombu.asynchronous.http.curl import CurlClient


class PromptCurlClient(CurlClient):
    """kombu's CurlClient with libcurl's timer honoured in milliseconds."""

    def _set_timeout(self, msecs: int) -> None:
        # libcurl: -1 means "no timer needed"; anything else is milliseconds.
        if msecs < 0:
            return
        self.hub.call_later(msecs / 1000.0, self._timeout_check)


def install_prompt_client(hub: Any) -> None:
    """Make ``hub``'s shared HTTP client a PromptCurlClient (once, before first use)."""
    if hub is not None and not hasattr(hub, "_current_http_client"):
        hub._current_http_client = PromptCurlClient(hub)
