"""The dashboard socket: one per open page, fed by notifications.realtime."""

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.models import User

from .realtime import BATCH_TYPE, OPERATORS_GROUP, user_group

CLOSE_DISABLED = 4403
# The layer messages a socket forwards to its page as they are.
FORWARDED = ("appointment.event", "notification")


# Handlers that never touch the database: dispatched without channels' per-message
# close_old_connections hop through the shared sync thread, which serialises fan-out.
NO_DATABASE = frozenset({"appointment.event", "notification", BATCH_TYPE, "account.disabled",
                         "websocket.receive"})


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    async def dispatch(self, message):
        if message.get("type") in NO_DATABASE:
            handler = getattr(self, get_handler_name(message), None)
            if handler:
                await handler(message)
                return
        await super().dispatch(message)

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

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def appointment_event(self, message):
        await self.send_json(message)

    async def notification(self, message):
        await self.send_json(message)

    async def account_disabled(self, message):
        await self.close(code=CLOSE_DISABLED)

    async def realtime_batch(self, message):
        """Several messages of one transaction for this group (`realtime.BATCH_TYPE`, see
        `realtime.coalesce`), forwarded one by one in their order."""
        for item in message.get("messages", ()):
            kind = item.get("type")
            if kind in FORWARDED:
                await self.send_json(item)
            elif kind == "account.disabled":
                await self.account_disabled(item)
                return

    @classmethod
    async def decode_json(cls, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None
