"""The HTTP half of the ASGI application: Django's handler, with the middleware
and the view run as one synchronous call.

Under ASGI Django builds an async middleware chain. Ours is all synchronous code
(WhiteNoise is sync-only; the others are `MiddlewareMixin`s that run each hook
through `sync_to_async`), so a request crossed between the event loop and the
worker thread fourteen times, and each crossing cost more than the whole
`/healthz` view. Every view and middleware here is synchronous: the chain runs
the way a WSGI server runs it, entered once from the event loop, on the
request's own thread (thread-sensitive, as Django's own handler does).

That thread is reused: Django's handler starts a new thread for every request
and joins it afterwards. Here a request borrows an idle one-thread executor
(one request at a time on it, as before) and returns it when done; a burst
beyond the idle ones gets new threads, and only `KEEP_IDLE` are kept after it.

And it is entered once: Django's handler crosses to it three times per request
(the request_started signal, the response, then `response.close()` with the
request_finished signal, which hands the database connection back to the pool),
each crossing a hand-over between the event loop and the thread and back. Here
the signal, the response and, for a response already whole in memory, its
close run in one crossing; the close comes before the bytes are written, so the
connection goes back to the pool sooner. A streamed response (a static file) is
closed after it has been sent, as before. The request is not cancelled when its
client goes away: a synchronous view runs to its end either way.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix

KEEP_IDLE = 32


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self):
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(1, thread_name_prefix="http")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            if len(self._idle) < KEEP_IDLE:
                self._idle.append(executor)
            else:
                # Joining blocks: not on the event loop.
                threading.Thread(target=executor.shutdown, daemon=True).start()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            response = await sync_to_async(self._respond, thread_sensitive=True)(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    def _respond(self, scope, body_file):
        """On the request's thread: everything between the body's arrival and the
        bytes going out."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()
        return response


def get_asgi_application() -> SyncChainASGIHandler:
    """`django.core.asgi.get_asgi_application` with this handler."""
    import django

    django.setup(set_prefix=False)
    return SyncChainASGIHandler()
