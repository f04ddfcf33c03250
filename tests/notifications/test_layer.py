"""The Redis channel layer itself (notifications.layer): the publishes of one
turn of the event loop share one pipeline, and that must not cost order or
error reporting."""

import asyncio

import pytest
import redis
import redis.asyncio
from channels.layers import channel_layers, get_channel_layer
from redis.exceptions import ConnectionError as RedisConnectionError

from notifications import layer as layer_module
from notifications.layer import ChannelLayer
from tests.servers import free_port


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


async def test_gathered_publishes_reach_a_socket_all_and_in_order(redis_url):
    layer = get_channel_layer()
    assert isinstance(layer, ChannelLayer)
    channel = await layer.new_channel()
    await layer.group_add("ordered", channel)
    try:
        # Three turns' worth, the first two gathered as a transaction's sends are.
        await asyncio.gather(*(layer.group_send("ordered", {"type": "x", "n": n}) for n in range(250)))
        await asyncio.gather(*(layer.group_send("ordered", {"type": "x", "n": n}) for n in range(250, 300)))
        await layer.group_send("ordered", {"type": "x", "n": 300})
        received = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(301)]
        assert received == list(range(301))
    finally:
        await layer.group_discard("ordered", channel)
        await layer.flush()


async def test_every_publish_of_a_failed_pipeline_raises():
    layer = ChannelLayer(hosts=[{"address": f"redis://127.0.0.1:{free_port()}/0", "socket_connect_timeout": 1}])
    try:
        results = await asyncio.gather(*(layer.group_send("nobody", {"type": "x", "n": n}) for n in range(5)),
                                       return_exceptions=True)
        assert len(results) == 5
        assert all(isinstance(result, RedisConnectionError) for result in results), results
        # The layer is still usable: the next turn tries again (and fails again, plainly).
        with pytest.raises(RedisConnectionError):
            await layer.group_send("nobody", {"type": "x"})
    finally:
        await layer.flush()


async def eventually(condition, timeout: float = 5) -> None:
    give_up = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < give_up, "timed out"
        await asyncio.sleep(0.01)


async def test_a_registered_receiver_gets_group_messages_only_when_nothing_waits_ahead(redis_url):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    queue = layer._get_layer().channels[channel]
    handed = []
    layer.deliver_directly(channel, lambda message: handed.append(message["n"]) or True)
    await layer.group_add("direct", channel)
    try:
        # The consumer is not waiting (busy elsewhere): queued, and so is the next,
        # which must not overtake it.
        await layer.group_send("direct", {"type": "x", "n": 0})
        await layer.group_send("direct", {"type": "x", "n": 1})
        await eventually(lambda: queue.qsize() == 2)
        assert handed == []
        assert [(await layer.receive(channel))["n"] for _ in range(2)] == [0, 1]
        # Now it waits in receive with nothing queued: handed over, in order.
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
        for n in range(2, 6):
            await layer.group_send("direct", {"type": "x", "n": n})
        await eventually(lambda: handed == [2, 3, 4, 5])
        assert not waiting.done() and queue.empty()
        # A receiver that declines, or none: the waiting consumer gets it.
        layer.deliver_directly(channel, lambda message: False)
        await layer.group_send("direct", {"type": "x", "n": 6})
        assert (await asyncio.wait_for(waiting, 5))["n"] == 6
        layer.deliver_directly(channel, None)
        await layer.group_send("direct", {"type": "x", "n": 7})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 7
        assert handed == [2, 3, 4, 5]
    finally:
        await layer.group_discard("direct", channel)
        await layer.flush()


async def test_one_publish_for_many_groups_reaches_each_groups_members_only_and_in_order(redis_url):
    """Two server processes' layers and a sender: a transaction's messages for
    several groups go as one publish, and each process hands each message to its
    own members of that message's group, in order with plain group sends."""
    settings = get_channel_layer()
    config = {"hosts": settings._kwargs["hosts"], "prefix": settings._kwargs["prefix"]}
    first, second, sender = ChannelLayer(**config), ChannelLayer(**config), ChannelLayer(**config)
    a, b = await first.new_channel(), await first.new_channel()
    c = await second.new_channel()
    memberships = ((first, "user_1", a), (first, "user_2", b), (first, "operators", b),
                   (second, "user_3", c), (second, "operators", c))
    for layer, group, channel in memberships:
        await layer.group_add(group, channel)
    client = redis.Redis.from_url(redis_url)
    try:
        published = client.info("commandstats")["cmdstat_publish"]["calls"]
        await sender.group_send("user_1", {"type": "x", "n": 0})
        await sender.group_send_many([("user_1", {"type": "x", "n": 1}), ("operators", {"type": "x", "n": 2}),
                                      ("user_3", {"type": "x", "n": 3}), ("nobody", {"type": "x", "n": 4})])
        await sender.group_send("user_1", {"type": "x", "n": 5})
        assert client.info("commandstats")["cmdstat_publish"]["calls"] - published == 3

        async def received(layer, channel, count):
            return [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(count)]

        assert await received(first, a, 3) == [0, 1, 5]
        assert await received(first, b, 1) == [2]
        assert await received(second, c, 2) == [2, 3]
        # Nothing else arrives for anybody.
        await sender.group_send_many([("user_2", {"type": "x", "n": 6}), ("user_3", {"type": "x", "n": 7})])
        assert await received(first, b, 1) == [6]
        assert await received(second, c, 1) == [7]
        assert first._get_layer().channels[a].empty()

        # A process whose sockets have all gone stops listening for them.
        many = first._get_layer().many_channel
        assert client.pubsub_numsub(many)[0][1] == 2
        for layer, group, channel in memberships:
            await layer.group_discard(group, channel)
        assert client.pubsub_numsub(many)[0][1] == 0
    finally:
        client.close()
        for layer in (first, second, sender):
            await layer.flush()


async def test_a_publish_for_many_groups_is_split_by_size_and_keeps_each_groups_order(redis_url, monkeypatch):
    monkeypatch.setattr(layer_module, "_MANY_BYTES", 2000)
    layer = get_channel_layer()
    channels = [await layer.new_channel() for _ in range(3)]
    for n, channel in enumerate(channels):
        await layer.group_add(f"g{n}", channel)
    client = redis.Redis.from_url(redis_url)
    try:
        published = client.info("commandstats")["cmdstat_publish"]["calls"]
        # 60 messages of about 500 bytes for three groups: about fifteen publishes of 2,000 bytes.
        await layer.group_send_many([(f"g{n % 3}", {"type": "x", "n": n, "pad": "." * 480}) for n in range(60)])
        assert 10 <= client.info("commandstats")["cmdstat_publish"]["calls"] - published <= 20
        for g, channel in enumerate(channels):
            got = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(20)]
            assert got == list(range(g, 60, 3))
    finally:
        client.close()
        await layer.flush()


async def test_an_unreadable_message_for_many_groups_is_dropped_and_the_sockets_stay(redis_url, caplog):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("steady", channel)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        many = layer._get_layer().many_channel
        # Not msgpack; not pairs; a triple; a pair of the wrong types.
        for garbage in (b"\xc1", b"\x93\x01\x02\x03", b"\x91\x93\x01\x02\x03", b"\x91\x92\xa1g\x05"):
            await client.publish(many, garbage)
        await layer.group_send_many([("steady", {"type": "x", "n": 1}), ("elsewhere", {"type": "x", "n": 2})])
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 1
        dropped = [r for r in caplog.records if "unreadable message for many groups" in r.getMessage()]
        assert len(dropped) == 4
        assert not [r for r in caplog.records if "lost Redis" in r.getMessage()]
    finally:
        await client.aclose()
        await layer.flush()
