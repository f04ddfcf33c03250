"""The channel layer with Redis: channels_redis's pub/sub layer, plus what the
dashboards need from it.

Pub/sub publishes a group message once; each server process with members in the
group receives it once and hands it to its own sockets, so membership lives in
the processes and nothing is left behind in Redis when sockets or processes go.
On top of channels_redis's layer:

- **A lost Redis closes the sockets.** channels_redis retries its subscription
  quietly, so a socket would stay open but hear nothing. Here every socket of the
  process gets `LOST_TYPE` (the consumer closes it): its page falls back to
  polling the events feed and reconnects, and catches up when Redis is back.
- **Publishes share a round trip.** channels_redis sends each publish on its
  own, one Redis round trip after another under the shard's lock. Here the
  publishes made in one turn of the event loop (a transaction's group sends,
  gathered) go to Redis as one pipeline: one write, one round trip, in order.
- **A transaction's groups share one publish.** `group_send_many` sends the
  messages for several groups (a rejection: the operators' event, each
  operator's notification, the therapist's event) as one publish on a channel
  every process with sockets listens to; each process hands every message to
  its own members of that message's group, exactly as a `group_send` would
  have. One Redis command instead of one per group, and one message for each
  process to read; with several Redis hosts (shards) it sends group by group,
  as one channel cannot keep each group's order across shards.
- **One decoding per process.** A group message reaches every local socket as the
  same bytes; they are decoded once and every socket gets the same (read-only)
  message, which the consumer also encodes to JSON once (see consumers).
- **Group messages handed over at once.** A socket may register a receiver
  (`deliver_directly`); a group message for it then goes straight to that
  receiver from the layer's read loop instead of through the socket's queue, its
  receive task and channels' dispatch loop (several event-loop turns per socket,
  which dominated a fan-out to thousands). Only when it cannot overtake anything:
  the socket's queue is empty and its consumer is waiting on it (so it holds no
  message it has not handled yet). Otherwise, or when the receiver declines, the
  message is queued as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgpack
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close, decode_hosts

logger = logging.getLogger(__name__)

LOST_TYPE = "layer.lost"
# Bytes of group messages per publish for many groups: a sweep batch's messages
# go as a few publishes of about this size, well below what Redis lets a
# subscriber fall behind by (its pub/sub output buffer limits).
_MANY_BYTES = 512 * 1024


class ChannelLayer(RedisPubSubChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last: tuple[bytes | None, dict | None] = (None, None)
        self._lost = self.serialize({"type": LOST_TYPE})

    def deserialize(self, message: bytes) -> dict:
        # Keeps a reference to the bytes, so `is` cannot match a new object at a reused address.
        raw, decoded = self._last
        if message is raw:
            return decoded
        decoded = super().deserialize(message)
        self._last = (message, decoded)
        return decoded

    async def group_send_many(self, envelopes: list[tuple[str, dict]]) -> None:
        """`group_send(group, message)` for each pair, in their order, as one publish."""
        await self._get_layer().group_send_many(envelopes)

    def deliver_directly(self, channel: str, receiver: Callable[[dict], bool] | None) -> None:
        """From now on `receiver(message)` gets `channel`'s group messages as they
        arrive, whenever nothing is waiting for it in its queue; it returns False to
        have a message queued instead. None stops it. Call from the server's loop."""
        direct = self._get_layer().direct
        if receiver is None:
            direct.pop(channel, None)
        else:
            direct[channel] = receiver

    def _get_layer(self) -> RedisPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return layer


class _LoopLayer(RedisPubSubLoopLayer):
    def __init__(self, hosts=None, *args, **kwargs):
        super().__init__(hosts, *args, **kwargs)
        self._shards = [_Shard(host, self) for host in decode_hosts(hosts)]
        self.direct: dict[str, Callable[[dict], bool]] = {}

    @property
    def many_channel(self) -> str:
        return f"{self.prefix}__groups__"

    async def group_add(self, group, channel):
        await super().group_add(group, channel)
        # A process with members of any group hears the publishes for many groups.
        many = self.many_channel
        await self._get_shard(many).subscribe(many)

    async def group_discard(self, group, channel):
        await super().group_discard(group, channel)
        if not self.groups:
            many = self.many_channel
            await self._get_shard(many).unsubscribe(many)

    async def group_send_many(self, envelopes: list[tuple[str, dict]]) -> None:
        if not envelopes:
            return
        if len(envelopes) == 1 or len(self._shards) > 1:
            await asyncio.gather(*(self.group_send(group, message) for group, message in envelopes))
            return
        serialize = self.channel_layer.serialize
        pieces: list[list[tuple[str, bytes]]] = [[]]
        size = 0
        for group, message in envelopes:
            data = serialize(message)
            if size + len(data) > _MANY_BYTES and pieces[-1]:
                pieces.append([])
                size = 0
            pieces[-1].append((self._get_group_channel_name(group), data))
            size += len(data)
        many = self.many_channel
        shard = self._get_shard(many)
        # Gathered, so they are one pipeline and keep their order.
        await asyncio.gather(*(shard.publish(many, msgpack.packb(piece, use_bin_type=True)) for piece in pieces))

    def tell_every_socket_lost(self) -> None:
        for messages in self.channels.values():
            messages.put_nowait(self.channel_layer._lost)


class _Shard(RedisSingleShardConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._outgoing: list[tuple[str, bytes, asyncio.Future]] = []
        self._publisher: asyncio.Task | None = None

    async def publish(self, channel, message):
        # Queued; the first publish of a turn starts the task that sends them all.
        future = asyncio.get_running_loop().create_future()
        self._outgoing.append((channel, message, future))
        if len(self._outgoing) == 1:
            self._publisher = asyncio.ensure_future(self._publish_outgoing())
        await future

    async def _publish_outgoing(self) -> None:
        async with self._lock:
            batch, self._outgoing = self._outgoing, []
            try:
                self._ensure_redis()
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, message, _ in batch:
                        pipe.publish(channel, message)
                    await pipe.execute()
            except Exception as exc:  # noqa: BLE001 - handed to every publish of the batch
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for *_, future in batch:
                    if not future.done():
                        future.set_result(None)

    def _receive_message(self, message) -> None:
        if message is None:
            return
        layer = self.channel_layer
        name, data = message["channel"], message["data"]
        if isinstance(name, bytes):
            name = name.decode()
        if name in layer.channels:
            layer.channels[name].put_nowait(data)
            return
        if name == layer.many_channel:
            try:
                parts = [(group, part) for group, part in msgpack.unpackb(data, raw=False)]
                if not all(isinstance(group, str) and isinstance(part, bytes) for group, part in parts):
                    raise ValueError("not (group, message) pairs")
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                # Not ours: dropped, not taken for a lost Redis (which would close every socket).
                logger.warning("channel layer dropped an unreadable message for many groups: %s", exc)
                return
            for group_channel, group_data in parts:
                self._to_group(group_channel, group_data)
            return
        self._to_group(name, data)

    def _to_group(self, name: str, data: bytes) -> None:
        """A group message, to this process's members of the group."""
        layer = self.channel_layer
        decoded = None
        for channel in layer.groups.get(name, ()):
            messages = layer.channels.get(channel)
            if messages is None:
                continue
            receiver = layer.direct.get(channel)
            if receiver is not None and _idle(messages):
                if decoded is None:
                    decoded = layer.channel_layer.deserialize(data)
                if receiver(decoded):
                    continue
            messages.put_nowait(data)

    async def _do_receiving(self) -> None:
        # channels_redis's receive loop, telling the sockets when the connection fails.
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                    self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must outlive Redis going away
                logger.warning("channel layer lost Redis (%s: %s); closing this process's sockets",
                               type(exc).__name__, exc)
                self.channel_layer.tell_every_socket_lost()
                await asyncio.sleep(1)


def _idle(messages: asyncio.Queue) -> bool:
    """Nothing queued and the consumer waiting in `receive`: it holds no earlier
    message, so one handed over now cannot overtake another."""
    return messages.empty() and any(not getter.done() for getter in messages._getters)
