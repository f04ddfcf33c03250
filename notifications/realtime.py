"""The only code that talks to the channel layer.

Everything is published after the transaction commits (`publish_on_commit`), so
a rolled-back transaction publishes nothing. A broken or slow channel layer
(Redis down) is logged and never raised into the request: the events and
notifications are already stored and the dashboards catch up from the events API.
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
# Sends in flight at once; keeps a big sweep from opening hundreds of connections.
_CHUNK = 100

Message = tuple[str, dict]


def user_group(user_id: int) -> str:
    return f"user_{user_id}"


def publish_on_commit(messages: Iterable[Message]) -> None:
    """Send `(group, message)` pairs once the current transaction commits."""
    messages = list(messages)
    if messages:
        transaction.on_commit(lambda: publish(messages))


def publish(messages: list[Message]) -> None:
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    try:
        async_to_sync(_send_all)(layer, messages)
    except Exception as exc:  # noqa: BLE001 - publishing must never fail a request
        logger.warning("realtime publish of %d message(s) failed: %s: %s", len(messages), type(exc).__name__, exc)


async def _send_all(layer, messages: list[Message]) -> None:
    timeout = settings.PUBLISH_TIMEOUT_SECONDS
    for start in range(0, len(messages), _CHUNK):
        chunk = messages[start:start + _CHUNK]
        await asyncio.wait_for(
            asyncio.gather(*(layer.group_send(group, message) for group, message in chunk)), timeout
        )


def disconnect_user(user_id: int) -> list[Message]:
    """The message that closes every open socket of a user (code 4403)."""
    return [(user_group(user_id), {"type": "account.disabled"})]
