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
