"""The only code that talks to the channel layer.

Everything is published after the transaction commits (`publish_on_commit`), so
a rolled-back transaction publishes nothing. A broken or slow channel layer
(Redis down) is logged and never raised into the request: the events and
notifications are already stored and the dashboards catch up from the events API.

The messages of one transaction are coalesced per group: each group gets one
channel-layer message (a `realtime.batch` of up to `_PER_ENVELOPE` messages, or
the message itself when it is alone), which the consumer unpacks into the
socket messages of the contract. A sweep batch of 500 timeouts is then a few
dozen group sends instead of thousands (each costs several Redis round trips),
and a dashboard's channel receives a handful of layer messages instead of a
thousand, well under the layer's per-channel capacity, past which channels_redis
silently drops messages.
"""

import asyncio
import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

OPERATORS_GROUP = "operators"
BATCH_TYPE = "realtime.batch"
# Socket messages carried by one channel-layer message (keeps each payload small).
_PER_ENVELOPE = 100
# Group sends in flight at once; each chunk gets PUBLISH_TIMEOUT_SECONDS.
_CHUNK = 50

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
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    try:
        async_to_sync(_send_all)(layer, coalesce(messages))
    except Exception as exc:  # noqa: BLE001 - publishing must never fail a request
        logger.warning("realtime publish of %d message(s) failed: %s: %s", len(messages), type(exc).__name__, exc)


async def _send_all(layer, envelopes: list[Message]) -> None:
    timeout = settings.PUBLISH_TIMEOUT_SECONDS
    for start in range(0, len(envelopes), _CHUNK):
        chunk = envelopes[start:start + _CHUNK]
        await asyncio.wait_for(
            asyncio.gather(*(layer.group_send(group, message) for group, message in chunk)), timeout
        )


def disconnect_user(user_id: int) -> list[Message]:
    """The message that closes every open socket of a user (code 4403)."""
    return [(user_group(user_id), {"type": "account.disabled"})]
