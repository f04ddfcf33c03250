"""The Redis channel layer itself (notifications.layer): the publishes of one
turn of the event loop share one pipeline, and that must not cost order or
error reporting."""

import asyncio

import pytest
from channels.layers import channel_layers, get_channel_layer
from redis.exceptions import ConnectionError as RedisConnectionError

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
