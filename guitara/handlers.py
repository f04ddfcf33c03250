"""The HTTP half of the ASGI application: Django's handler, with the middleware
and the view run as one synchronous call.

Under ASGI Django builds an async middleware chain. Ours is all synchronous code
(WhiteNoise is sync-only; the others are `MiddlewareMixin`s that run each hook
through `sync_to_async`), so a request crossed between the event loop and the
worker thread about a dozen times, and each crossing cost more than the whole
`/healthz` view. Every view and middleware here is synchronous: the chain runs
the way a WSGI server runs it, entered once from the event loop, on the
request's own thread (thread-sensitive, as Django's own handler does).
"""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class SyncChainASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_asgi_application() -> SyncChainASGIHandler:
    """`django.core.asgi.get_asgi_application` with this handler."""
    import django

    django.setup(set_prefix=False)
    return SyncChainASGIHandler()
