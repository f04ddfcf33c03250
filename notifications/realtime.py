"""The only code that talks to the channel layer.

Everything is published after the transaction commits (`publish_on_commit`), so
a rolled-back transaction publishes nothing. A broken or slow channel layer
(Redis down) is logged and never raised into the request: the events and
notifications are already stored and the dashboards catch up from the events API.

Inside the server the request does not wait for Redis: the messages go to a
sender task on the server's event loop (one per loop, first in, first out), and
the response is written while they are sent. The sweep command and other
processes without a server loop send and wait.

The messages of one transaction are coalesced per group: each group gets one
channel-layer message (a `realtime.batch` of up to `_PER_ENVELOPE` messages, or
the message itself when it is alone), which the consumer unpacks into the
socket messages of the contract; on the Redis layer the groups' messages then
travel together, as one publish (`layer.group_send_many`). A sweep batch of 500
timeouts is then a few publishes instead of thousands of group sends (each
costs several Redis round trips), and a dashboard's channel receives a handful
of layer messages instead of a thousand, well under the layer's per-channel
capacity, past which channels_redis silently drops messages.
"""

import asyncio
import contextvars
import logging
import os
import queue
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

OPERATORS_GROUP = "operators"
BATCH_TYPE = "realtime.batch"
# Socket messages carried by one channel-layer message (keeps each payload small).
_PER_ENVELOPE = 100
# Group messages sent at once (one publish on the Redis layer); each chunk gets PUBLISH_TIMEOUT_SECONDS.
_CHUNK = 200

Message = tuple[str, dict]


def user_group(user_id: int) -> str:
    return f"user_{user_id}"


def publish_on_commit(messages: Iterable[Message]) -> None:
    """Send `(group, message)` pairs once the current transaction commits."""
    messages = list(messages)
    if messages:
        transaction.on_commit(lambda: publish(messages))


def coalesce(messages: Iterable[Message]) -> list[Message]:
    """Per group, in their order: one layer message per `_PER_ENVELOPE` messages."""
    by_group: dict[str, list[dict]] = {}
    for group, message in messages:
        by_group.setdefault(group, []).append(message)
    envelopes: list[Message] = []
    for group, items in by_group.items():
        for start in range(0, len(items), _PER_ENVELOPE):
            chunk = items[start:start + _PER_ENVELOPE]
            envelopes.append((group, chunk[0] if len(chunk) == 1 else {"type": BATCH_TYPE, "messages": chunk}))
    return envelopes


def publish(messages: list[Message]) -> None:
    """Send now. Inside the server (sync code called from its event loop) the
    messages are handed to that loop's sender task and the request goes on
    without waiting for Redis; elsewhere (the sweep command, shells, tests) this
    waits until they are sent."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    envelopes = coalesce(messages)
    loop = _server_loop()
    if loop is not None:
        loop.call_soon_threadsafe(_enqueue, loop, layer, envelopes)
        return
    if _background is not None:
        _background.jobs.put((layer, envelopes))
        return
    try:
        async_to_sync(_send_all)(layer, envelopes)
    except Exception as exc:  # noqa: BLE001 - publishing must never fail a request
        logger.warning("realtime publish of %d message(s) failed: %s: %s", len(messages), type(exc).__name__, exc)


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop that called into this sync thread (asgiref records it), if
    it is still running: the server's loop, where the sockets live."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    return loop if loop.is_running() and not loop.is_closed() else None


# One sender task per event loop drains a FIFO queue, so one transaction's
# messages never overtake an earlier one's (pages track the last event id).
_senders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Past this many waiting publishes (Redis down for long), new ones are dropped and
# logged: the events are stored and the pages catch up from the events API.
_MAX_WAITING = 10_000


def _enqueue(loop: asyncio.AbstractEventLoop, layer, envelopes: list[Message]) -> None:
    sender = _senders.get(loop)
    if sender is None:
        queue: asyncio.Queue = asyncio.Queue()
        # Kept with its queue: the loop itself holds tasks only weakly. A context of
        # its own: it outlives the request whose publish started it.
        sender = _senders[loop] = (queue, loop.create_task(_sender(queue), context=contextvars.Context()))
    queue = sender[0]
    if queue.qsize() >= _MAX_WAITING:
        logger.warning("realtime publish dropped: %d publishes already waiting", queue.qsize())
        return
    queue.put_nowait((layer, envelopes))


async def _sender(queue: asyncio.Queue) -> None:
    while True:
        layer, envelopes = await queue.get()
        try:
            await _send_all(layer, envelopes)
        except Exception as exc:  # noqa: BLE001 - one failed publish must not stop the sender
            logger.warning("realtime publish of %d envelope(s) failed: %s: %s", len(envelopes),
                           type(exc).__name__, exc)
        finally:
            queue.task_done()


async def drain() -> None:
    """Wait until this loop's sender has sent everything handed to it (tests)."""
    sender = _senders.get(asyncio.get_running_loop())
    if sender is not None:
        await sender[0].join()


class _SenderThread(threading.Thread):
    """Sends for a process without a server loop (the sweep command), in order,
    on an event loop of its own, while the process goes on with its next batch."""

    def __init__(self):
        super().__init__(name="realtime-sender", daemon=True)
        # Bounded: when Redis is slower than the sweep, the sweep waits for it
        # instead of holding a backlog of unsent batches in memory.
        self.jobs: queue.Queue = queue.Queue(maxsize=4)

    def run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while (job := self.jobs.get()) is not None:
                layer, envelopes = job
                try:
                    loop.run_until_complete(_send_all(layer, envelopes))
                except Exception as exc:  # noqa: BLE001 - one failed publish must not stop the sender
                    logger.warning("realtime publish of %d envelope(s) failed: %s: %s", len(envelopes),
                                   type(exc).__name__, exc)
        finally:
            loop.close()  # channels_redis flushes its pools for this loop here


_background: _SenderThread | None = None


@contextmanager
def sending_in_background(*, finish_within: float = 60.0) -> Iterator[None]:
    """Within this block, publishing hands its messages to a sender thread instead
    of waiting for Redis; leaving the block waits (up to `finish_within` seconds)
    until everything handed over is sent."""
    global _background
    if _background is not None or _server_loop() is not None:
        yield  # already sending in the background, or inside the server
        return
    sender = _background = _SenderThread()
    sender.start()
    try:
        yield
    finally:
        _background = None
        sender.jobs.put(None)
        sender.join(finish_within)
        if sender.is_alive():
            logger.warning("realtime sender still busy after %.0f s; leaving it", finish_within)


async def _send_all(layer, envelopes: list[Message]) -> None:
    timeout = settings.PUBLISH_TIMEOUT_SECONDS
    many = getattr(layer, "group_send_many", None)  # the Redis layer: a chunk in one publish
    for start in range(0, len(envelopes), _CHUNK):
        chunk = envelopes[start:start + _CHUNK]
        if many is not None:
            await asyncio.wait_for(many(chunk), timeout)
        else:
            await asyncio.wait_for(
                asyncio.gather(*(layer.group_send(group, message) for group, message in chunk)), timeout
            )


def disconnect_user(user_id: int) -> list[Message]:
    """The message that closes every open socket of a user (code 4403)."""
    return [(user_group(user_id), {"type": "account.disabled"})]
