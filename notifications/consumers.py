"""The dashboard socket: one per open page, fed by notifications.realtime."""

import asyncio
import json
import logging

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.models import User

from .layer import LOST_TYPE
from .realtime import BATCH_TYPE, OPERATORS_GROUP, user_group

logger = logging.getLogger(__name__)

CLOSE_DISABLED = 4403
# The channel layer lost Redis: the page polls the events feed and reconnects.
CLOSE_LAYER_LOST = 4503
# The layer messages a socket forwards to its page as they are.
FORWARDED = ("appointment.event", "notification")


# Handlers that never touch the database: dispatched without channels' per-message
# close_old_connections hop through the shared sync thread, which serialises fan-out.
NO_DATABASE = frozenset({"appointment.event", "notification", BATCH_TYPE, "account.disabled", LOST_TYPE,
                         "websocket.receive"})

# The last message encoded and its JSON: the layer hands every socket of this
# process the same message object for one group message, so a fan-out to
# thousands of sockets encodes it once. Holding the message keeps `is` honest.
_last_encoded: tuple[dict | None, str] = (None, "")


def _as_json(message: dict) -> str:
    global _last_encoded
    if _last_encoded[0] is not message:
        _last_encoded = (message, json.dumps(message))
    return _last_encoded[1]


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    async def dispatch(self, message):
        if message.get("type") in NO_DATABASE:
            handler = getattr(self, get_handler_name(message), None)
            if handler:
                await handler(message)
                return
        await super().dispatch(message)

    def _deliver(self, message: dict) -> bool:
        """The layer's direct hand-over (`layer.deliver_directly`): the messages a
        socket forwards as they are go out in a task of their own, in arrival order;
        anything else (closing the socket) takes the usual queue."""
        kind = message.get("type")
        if kind == BATCH_TYPE:
            if any(item.get("type") not in FORWARDED for item in message.get("messages", ())):
                return False
        elif kind not in FORWARDED:
            return False
        task = asyncio.ensure_future(self.dispatch(message))
        self._forwarding.add(task)
        task.add_done_callback(self._forwarded)
        return True

    def _forwarded(self, task: asyncio.Task) -> None:
        self._forwarding.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("forwarding a message to a socket failed", exc_info=task.exception())

    async def connect(self):
        user = self.scope.get("user")
        if not user or not user.is_authenticated or not user.is_active or user.role not in User.Role.values:
            await self.close()  # before accept: the handshake is refused (403)
            return
        self.groups_joined = [user_group(user.id)]
        if user.role == User.Role.OPERATOR:
            self.groups_joined.append(OPERATORS_GROUP)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        # Once open (a send before the accept would open it early); anything that
        # came meanwhile is in the queue, and nothing handed over overtakes it.
        direct = getattr(self.channel_layer, "deliver_directly", None)
        if direct:
            self._forwarding: set[asyncio.Task] = set()
            direct(self.channel_name, self._deliver)

    async def disconnect(self, code):
        direct = getattr(self.channel_layer, "deliver_directly", None)
        if direct:
            direct(self.channel_name, None)
        for group in getattr(self, "groups_joined", []):
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception as exc:  # noqa: BLE001 - Redis is gone: nothing is left there to discard
                logger.warning("leaving group %s failed: %s: %s", group, type(exc).__name__, exc)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def appointment_event(self, message):
        await self.send(text_data=_as_json(message))

    async def notification(self, message):
        await self.send(text_data=_as_json(message))

    async def account_disabled(self, message):
        await self.close(code=CLOSE_DISABLED)

    async def layer_lost(self, message):
        await self.close(code=CLOSE_LAYER_LOST)

    async def realtime_batch(self, message):
        """Several messages of one transaction for this group (`realtime.BATCH_TYPE`, see
        `realtime.coalesce`), forwarded one by one in their order."""
        for item in message.get("messages", ()):
            kind = item.get("type")
            if kind in FORWARDED:
                await self.send(text_data=_as_json(item))
            elif kind == "account.disabled":
                await self.account_disabled(item)
                return

    @classmethod
    async def decode_json(cls, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None
