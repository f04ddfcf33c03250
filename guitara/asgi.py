"""HTTP + websocket entry point: `daphne guitara.asgi:application`."""

import os

from guitara import transport
from guitara.handlers import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guitara.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from notifications import push  # noqa: E402
from notifications.routing import websocket_urlpatterns  # noqa: E402
from scheduling.embedded_sweep import EmbeddedSweep  # noqa: E402

push.log_status()  # once at start: is Web Push on?
transport.install()  # under daphne: sockets write at once when nothing is queued

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
if settings.EMBEDDED_SWEEP_SECONDS:
    # The embedded default (make run): the sweep runs where the in-memory layer reaches the sockets.
    application = EmbeddedSweep(application, settings.EMBEDDED_SWEEP_SECONDS)
