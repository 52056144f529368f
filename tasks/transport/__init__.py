"""Celery inspect, remote control and events over Amazon SQS, with SNS for broadcast.

Use it by naming the class as Celery's broker transport (the broker URL stays
``sqs://…``)::

    broker_transport = "tasks.transport:Transport"
    broker_transport_options = {..., **MonitoringSettings.from_env().transport_options()}

Why kombu alone does not do this
--------------------------------
kombu 5.7's SQS transport can publish a *fanout* exchange to an SNS topic and
subscribe a consuming queue to it (``supports_fanout``), but Celery's broadcast
features still fail on it, for these reasons:

1. The transport declares ``exchange_type={'direct'}``, so a worker turns its remote
   control off (``Control.include_if`` asks ``supports_exchange_type('fanout')``).
2. Replies to ``inspect``/``control`` go to the direct exchange ``reply.celery.pidbox``.
   kombu's virtual transports route a direct exchange with the bindings held *in the
   publishing process*; the caller bound its reply queue in its own process, so the
   worker finds no binding and the reply is silently dropped.
3. Each call gets a new reply queue (its name embeds ``id()`` of a copied Mailbox), and
   ``after_reply_message_received`` deletes it: a CreateQueue + DeleteQueue per call,
   and AWS refuses to re-create a name within 60 s of deleting it.
4. Celery's event exchange is a *topic* exchange on every broker but Redis, and topic
   routing is again per-process: worker events never reach a listener.
5. SQS has no auto-delete or expiry: pidbox queues, event-listener queues and their SNS
   subscriptions outlive their process forever (and with moto's server, one dangling
   subscription makes every later publish to that topic fail).
6. A synchronous caller's long poll ignores the caller's timeout (``inspect`` with
   ``timeout=1`` blocks for ``wait_time_seconds``), and a no-ack message read outside
   an event loop is deleted through the *asynchronous* client, which never runs there.
7. Every event is its own SNS ``Publish``; and with ``predefined_queues`` (facefleet's
   provisioned queues), any other queue — a listener or reply queue — is refused.

What this package adds (subclassing kombu's SQS ``Transport``/``Channel``, not a fork)
-------------------------------------------------------------------------------------
- fanout/topic in ``implements``; ``supports_fanout`` on by default; the exchanges in
  ``fanout_exchanges`` (Celery's ``celeryev``) are declared as fanout, so events go
  through SNS, and topic binding keys other than ``#`` are matched by the listener;
- every AMQP auto-delete queue (pidbox, reply, event listener) becomes an SQS queue
  owned by the declaring process, with a fresh name ``<prefix>ls-…``/``<prefix>rp-…``,
  tagged with its last-seen time (:mod:`tasks.transport.registry`);
- replies: the caller rewrites ``reply_to`` to name a pooled physical reply queue and a
  worker publishes straight to it (never creating it); pooled queues are reused across
  calls and threads, so ``inspect`` costs no queue churn;
- cleanup: a closing connection unsubscribes and deletes its listener queues, the
  process deletes all of its own at exit, and every owner sweeps queues whose last-seen
  tag expired (crashed processes) and subscriptions whose queue is gone;
- long polls bounded by the caller's remaining timeout; no-ack reads deleted with one
  ``DeleteMessageBatch``; events coalesced into SNS ``PublishBatch`` requests
  (:mod:`tasks.transport.batching`); monitoring queues bypass ``predefined_queues``;
- prompt asynchronous polls: libcurl's millisecond timer honoured
  (:mod:`tasks.transport.prompt_curl`), so a worker's next long poll starts at once;
- Flower: an SQS broker back end for its broker page and queue-length API
  (:mod:`tasks.transport.flower_broker`), installed when ``celery flower`` runs.
"""

from __future__ import annotations

from tasks.transport.sqs_sns import Channel, Transport

__all__ = ["Channel", "Transport"]
